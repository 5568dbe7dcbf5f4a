//! Tables of live handles. A handle packs a slot index with the slot's generation and the
//! table's kind, so a released, completed or forged handle, or one of another kind (a lease
//! handle given as a stream), is recognised and refused instead of reaching freed memory.
//!
//! Layout: bits 32..64 the generation, bits 24..32 the kind, bits 0..24 the index plus one.

use parking_lot::Mutex;

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// A thread-safe table of values reachable by generation-checked `u64` handles; 0 is never issued.
pub(crate) struct HandleTable<T> {
    kind: u8,
    inner: Mutex<Slots<T>>,
}

/// Most slots a table has: the index field holds the index plus one in 24 bits.
const MAX_SLOTS: usize = (1 << 24) - 1;
const INDEX_MASK: u64 = (1 << 24) - 1;

/// Which kind of handle each table issues: distinct and non-zero.
pub(crate) mod kind {
    pub(crate) const LEASE: u8 = 1;
    pub(crate) const CALL: u8 = 2;
    pub(crate) const STREAM: u8 = 3;
}

impl<T: Clone> HandleTable<T> {
    pub(crate) const fn new(kind: u8) -> HandleTable<T> {
        HandleTable {
            kind,
            inner: Mutex::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn split(&self, handle: u64) -> Option<(usize, u32)> {
        if (handle >> 24) & 0xff != u64::from(self.kind) {
            return None;
        }
        let index = (handle & INDEX_MASK).checked_sub(1)?;
        Some((usize::try_from(index).ok()?, (handle >> 32) as u32))
    }

    /// Stores `value` and returns its handle; `None` when the table is full (16 million live
    /// handles of one kind).
    pub(crate) fn insert(&self, value: T) -> Option<u64> {
        let mut table = self.inner.lock();
        let index = match table.free.pop() {
            Some(index) => index,
            None if table.slots.len() < MAX_SLOTS => {
                table.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                (table.slots.len() - 1) as u32
            }
            None => return None,
        };
        let slot = &mut table.slots[index as usize];
        slot.value = Some(value);
        Some(
            (u64::from(slot.generation) << 32)
                | (u64::from(self.kind) << 24)
                | (u64::from(index) + 1),
        )
    }

    /// The value behind a live handle.
    pub(crate) fn get(&self, handle: u64) -> Option<T> {
        let (index, generation) = self.split(handle)?;
        let table = self.inner.lock();
        let slot = table.slots.get(index)?;
        (slot.generation == generation)
            .then(|| slot.value.clone())
            .flatten()
    }

    /// Takes the value out; the handle is dead from now on.
    pub(crate) fn remove(&self, handle: u64) -> Option<T> {
        let (index, generation) = self.split(handle)?;
        let mut table = self.inner.lock();
        let slot = table.slots.get_mut(index)?;
        if slot.generation != generation || slot.value.is_none() {
            return None;
        }
        let value = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1).max(1);
        table.free.push(index as u32);
        value
    }

    /// Takes out every value `matches` selects.
    pub(crate) fn remove_where(&self, matches: impl Fn(&T) -> bool) -> Vec<T> {
        let mut table = self.inner.lock();
        let mut taken = Vec::new();
        let mut freed = Vec::new();
        for (index, slot) in table.slots.iter_mut().enumerate() {
            if slot.value.as_ref().is_some_and(&matches) {
                taken.extend(slot.value.take());
                slot.generation = slot.generation.wrapping_add(1).max(1);
                freed.push(index as u32);
            }
        }
        table.free.extend(freed);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_forged_handles_are_refused() {
        let table = HandleTable::new(kind::LEASE);
        let first = table.insert("a").unwrap();
        assert_eq!(table.get(first), Some("a"));
        assert_eq!(table.remove(first), Some("a"));
        assert_eq!(table.remove(first), None, "double release");
        let second = table.insert("b").unwrap();
        assert_ne!(first, second, "a reused slot gets a new generation");
        assert_eq!(table.get(first), None);
        for forged in [0, 1, u64::MAX, second ^ (1 << 40), second + 7] {
            assert_eq!(table.get(forged), None, "{forged:#x}");
        }
        // The same slot and generation in a table of another kind is another handle.
        let (leases, streams) = (
            HandleTable::new(kind::LEASE),
            HandleTable::new(kind::STREAM),
        );
        let (lease, stream) = (leases.insert(1).unwrap(), streams.insert(2).unwrap());
        assert_ne!(lease, stream);
        assert_eq!(lease & !(0xff << 24), stream & !(0xff << 24));
        assert_eq!(leases.get(stream), None);
        assert_eq!(streams.get(lease), None);
        assert_eq!(table.remove_where(|value| *value == "b"), vec!["b"]);
        assert_eq!(table.remove(second), None, "removed by remove_where");
        let third = table.insert("c").unwrap();
        assert_eq!(table.remove(third), Some("c"));
        assert_eq!(table.get(third), None);
        assert_eq!(table.get(second), None);
    }
}
