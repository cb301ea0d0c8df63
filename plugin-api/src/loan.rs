//! Messages written and read in place, in a topic's shared memory: loans and borrowed reads.
//!
//! Owns the guards [`Context::loan`](crate::Context::loan),
//! [`Context::loan_bytes`](crate::Context::loan_bytes),
//! [`Context::recv_ref`](crate::Context::recv_ref) and
//! [`Context::recv_bytes_ref`](crate::Context::recv_bytes_ref) return, and their lifetime
//! rules (docs/plugins.md, "Large messages in place"):
//! - A loan is one slot of the output's ring, lent for writing. [`Loan::send`] publishes it;
//!   dropping it unsent discards it (subscribers never see it). Subscribers read a topic in
//!   order, so they wait at an open loan: a loan lives within the call that made it (the host
//!   discards one left open when the call returns).
//! - A borrowed read ([`Ref`], [`BytesRef`]) is the message in its slot, which no publisher
//!   writes until the guard is dropped (on a `reliable` topic they wait for it; otherwise
//!   they skip the slot). A node may hold up to half its input's ring at once.

use crate::abi::{self, NodeContext, RawSlice};
use crate::message::Pod;
use crate::node::SendError;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// The host's function table of `raw`.
///
/// # Safety
/// `raw` must be a context the host handed to this call (valid for the guard's lifetime).
unsafe fn api(raw: &NodeContext) -> &abi::HostApi {
    // SAFETY: the caller's contract; the host keeps its table alive for the node's lifetime.
    unsafe { &*raw.api }
}

/// An open loan of output `port`, for the guards below.
struct Open<'c> {
    raw: &'c NodeContext,
    port: u32,
    name: &'static str,
    open: bool,
}

impl<'c> Open<'c> {
    fn new(raw: &'c NodeContext, port: u32, name: &'static str) -> Self {
        Open {
            raw,
            port,
            name,
            open: true,
        }
    }

    fn close(&mut self, len: usize) -> i32 {
        self.open = false;
        // SAFETY: `raw` is the context of the call that opened the loan (the guard borrows it).
        unsafe { (api(self.raw).close_loan)(self.raw.host, self.port, len) }
    }

    fn send(mut self, len: usize) -> Result<(), SendError> {
        crate::node::send_result(self.close(len), self.name)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if self.open {
            self.close(abi::LOAN_DISCARD);
        }
    }
}

/// A plain-data message being written in place in an output's shared memory
/// ([`Context::loan`](crate::Context::loan)). Derefs to the message; [`send`](Loan::send)
/// publishes it, dropping it discards it. Its content starts as whatever the slot held:
/// set every field.
pub struct Loan<'c, M: Pod> {
    open: Open<'c>,
    ptr: *mut M,
    _message: PhantomData<&'c mut M>,
}

impl<'c, M: Pod> Loan<'c, M> {
    /// # Safety
    /// `ptr` is the open loan of `port` on `raw`: writable, aligned for `M` and
    /// `size_of::<M>()` bytes, until the loan is closed.
    pub(crate) unsafe fn new(raw: &'c NodeContext, port: u32, name: &'static str, ptr: *mut M) -> Self {
        Loan {
            open: Open::new(raw, port, name),
            ptr,
            _message: PhantomData,
        }
    }

    /// Publishes the message.
    pub fn send(self) -> Result<(), SendError> {
        let Loan { open, .. } = self;
        open.send(size_of::<M>())
    }
}

impl<M: Pod> Deref for Loan<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        // SAFETY: `ptr` is the loan's memory (see `new`), valid while the loan is open, which it
        // is as long as this guard lives; any bit pattern is a valid `M` (`Pod`).
        unsafe { &*self.ptr }
    }
}

impl<M: Pod> DerefMut for Loan<'_, M> {
    fn deref_mut(&mut self) -> &mut M {
        // SAFETY: as for `deref`; the host lent the memory to this loan alone.
        unsafe { &mut *self.ptr }
    }
}

/// Raw bytes being written in place in an output's shared memory
/// ([`Context::loan_bytes`](crate::Context::loan_bytes)). Derefs to the lent bytes;
/// [`send`](LoanBytes::send) publishes them (or [`send_prefix`](LoanBytes::send_prefix) a
/// first part), dropping the guard discards them.
pub struct LoanBytes<'c> {
    open: Open<'c>,
    ptr: *mut u8,
    len: usize,
    _bytes: PhantomData<&'c mut [u8]>,
}

impl<'c> LoanBytes<'c> {
    /// # Safety
    /// `ptr` is the open loan of `port` on `raw`: `len` writable bytes until it is closed.
    pub(crate) unsafe fn new(
        raw: &'c NodeContext,
        port: u32,
        name: &'static str,
        ptr: *mut u8,
        len: usize,
    ) -> Self {
        LoanBytes {
            open: Open::new(raw, port, name),
            ptr,
            len,
            _bytes: PhantomData,
        }
    }

    /// Publishes all the lent bytes as one message.
    pub fn send(self) -> Result<(), SendError> {
        let len = self.len;
        self.send_prefix(len)
    }

    /// Publishes the first `len` bytes (at most the lent length) as one message.
    pub fn send_prefix(self, len: usize) -> Result<(), SendError> {
        let LoanBytes { open, len: lent, .. } = self;
        open.send(len.min(lent))
    }
}

impl Deref for LoanBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is `len` bytes lent to this open loan (see `new`); bytes have no
        // invalid patterns.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for LoanBytes<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `deref`; the host lent the memory to this loan alone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A message held by a borrowed read, for the guards below: releases it when dropped.
struct Held<'c> {
    raw: &'c NodeContext,
    pin: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` is the context of the call that took the message (the guard borrows it).
        unsafe { (api(self.raw).release_ref)(self.raw.host, self.pin) }
    }
}

/// A plain-data message read in place in its topic's shared memory
/// ([`Context::recv_ref`](crate::Context::recv_ref)): no publisher writes it until this is
/// dropped.
pub struct Ref<'c, M: Pod> {
    _held: Held<'c>,
    ptr: *const M,
}

impl<'c, M: Pod> Ref<'c, M> {
    /// # Safety
    /// `ptr` is message `pin` taken on `raw`: aligned for `M`, `size_of::<M>()` readable bytes
    /// that stay unchanged until `pin` is released.
    pub(crate) unsafe fn new(raw: &'c NodeContext, pin: u64, ptr: *const M) -> Self {
        Ref {
            _held: Held { raw, pin },
            ptr,
        }
    }
}

impl<M: Pod> Deref for Ref<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        // SAFETY: `ptr` is the held message (see `new`), unchanged until this guard releases
        // it; any bit pattern is a valid `M` (`Pod`).
        unsafe { &*self.ptr }
    }
}

/// Raw message bytes read in place in their topic's shared memory
/// ([`Context::recv_bytes_ref`](crate::Context::recv_bytes_ref)).
pub struct BytesRef<'c> {
    _held: Held<'c>,
    bytes: RawSlice,
}

impl<'c> BytesRef<'c> {
    /// # Safety
    /// `bytes` is message `pin` taken on `raw`, readable and unchanged until `pin` is released.
    pub(crate) unsafe fn new(raw: &'c NodeContext, pin: u64, bytes: RawSlice) -> Self {
        BytesRef {
            _held: Held { raw, pin },
            bytes,
        }
    }
}

impl Deref for BytesRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.bytes.len == 0 {
            return &[];
        }
        // SAFETY: the held message's bytes (see `new`), unchanged until this guard is dropped.
        unsafe { std::slice::from_raw_parts(self.bytes.ptr, self.bytes.len) }
    }
}
