//! Typed shard-local slots: state that a component (a plugin) keeps on every shard,
//! declared by its type and created on first use. One shard's slots are only ever
//! touched by that shard's thread, so a slot is an `Rc`, not an `Arc`, and needs no lock.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;

/// The slots of one shard.
#[derive(Default)]
pub struct Slots {
    map: RefCell<AHashMap<TypeId, Rc<dyn Any>>>,
}

impl Slots {
    /// The slot of type `S` on this shard, created with `S::default()` on first use.
    pub fn get<S: Default + 'static>(&self) -> Rc<S> {
        let id = TypeId::of::<S>();
        if let Some(s) = self.map.borrow().get(&id) {
            if let Ok(s) = s.clone().downcast::<S>() {
                return s;
            }
        }
        let s = Rc::new(S::default());
        self.map.borrow_mut().insert(id, s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Default)]
    struct Count(Cell<u32>);

    #[derive(Default)]
    struct Other(u8);

    #[test]
    fn one_slot_per_type() {
        let slots = Slots::default();
        slots.get::<Count>().0.set(3);
        assert_eq!(slots.get::<Count>().0.get(), 3);
        assert_eq!(slots.get::<Other>().0, 0);
    }
}
