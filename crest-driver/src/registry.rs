//! The registry of open connections and the broadcast fan-out.
//!
//! Broadcast encodes a message once ([`EncodedMessage`]: server frames are
//! not masked, so the same bytes serve every client) and hands each
//! connection an `Arc` of it: N recipients cost N reference-count increments
//! and N inbox pushes, not N encodings or copies. The registry lock is held
//! only to walk the map; no user callback ever runs under it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crest_proto::{EncodedMessage, Message};

use crate::conn::{Conn, ConnId};

/// Ids are sequential numbers: a multiplicative hash spreads them over the
/// high bits the table uses, at the cost of one multiplication.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(crate) type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

/// Open connections of one endpoint, by id.
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<IdMap<Conn>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, IdMap<Conn>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, conn: &Conn) {
        self.lock().insert(conn.id(), conn.clone());
    }

    pub(crate) fn remove(&self, id: ConnId) {
        let removed = self.lock().remove(&id);
        drop(removed); // outside the lock
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<Conn> {
        self.lock().get(&id).cloned()
    }

    pub(crate) fn snapshot(&self) -> Vec<Conn> {
        self.lock().values().cloned().collect()
    }

    /// Queues `message`, encoded once, on every open connection except
    /// `skip`. Returns how many connections it was queued on; connections
    /// that are closing or over their queue limit are skipped (the latter
    /// are being disconnected as slow consumers).
    pub(crate) fn broadcast(&self, message: Message, max_frame: usize, skip: Option<ConnId>) -> usize {
        let encoded = Arc::new(EncodedMessage::new(message, max_frame));
        let conns = self.lock();
        conns.values().filter(|c| Some(c.id()) != skip).filter(|c| c.send_encoded(encoded.clone()).is_ok()).count()
    }
}
