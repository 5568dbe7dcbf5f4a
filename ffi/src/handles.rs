//! Tables of live handles. A handle packs a slot index with the slot's generation, so a
//! released, completed or forged handle is recognised and refused instead of reaching freed
//! memory.

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
    inner: Mutex<Slots<T>>,
}

fn split(handle: u64) -> Option<(usize, u32)> {
    let index = (handle & 0xffff_ffff).checked_sub(1)?;
    Some((usize::try_from(index).ok()?, (handle >> 32) as u32))
}

impl<T: Clone> HandleTable<T> {
    pub(crate) const fn new() -> HandleTable<T> {
        HandleTable {
            inner: Mutex::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    /// Stores `value` and returns its handle.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let mut table = self.inner.lock();
        let index = match table.free.pop() {
            Some(index) => index,
            None => {
                table.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                (table.slots.len() - 1) as u32
            }
        };
        let slot = &mut table.slots[index as usize];
        slot.value = Some(value);
        (u64::from(slot.generation) << 32) | (u64::from(index) + 1)
    }

    /// The value behind a live handle.
    pub(crate) fn get(&self, handle: u64) -> Option<T> {
        let (index, generation) = split(handle)?;
        let table = self.inner.lock();
        let slot = table.slots.get(index)?;
        (slot.generation == generation)
            .then(|| slot.value.clone())
            .flatten()
    }

    /// Takes the value out; the handle is dead from now on.
    pub(crate) fn remove(&self, handle: u64) -> Option<T> {
        let (index, generation) = split(handle)?;
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
        let table = HandleTable::new();
        let first = table.insert("a");
        assert_eq!(table.get(first), Some("a"));
        assert_eq!(table.remove(first), Some("a"));
        assert_eq!(table.remove(first), None, "double release");
        let second = table.insert("b");
        assert_ne!(first, second, "a reused slot gets a new generation");
        assert_eq!(table.get(first), None);
        for forged in [0, 1, u64::MAX, second ^ (1 << 40), second + 7] {
            assert_eq!(table.get(forged), None, "{forged:#x}");
        }
        assert_eq!(table.remove_where(|value| *value == "b"), vec!["b"]);
        assert_eq!(table.get(second), None);
    }
}
