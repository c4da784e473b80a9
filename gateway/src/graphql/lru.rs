//! A bounded map, least recently used out first: the APQ cache and the
//! parsed-document cache. Values are cloned out (keep them cheap to clone,
//! e.g. behind an `Arc`).

use std::collections::{BTreeMap, HashMap};

pub struct Lru<V> {
    max: usize,
    tick: u64,
    entries: HashMap<String, (V, u64)>,
    order: BTreeMap<u64, String>,
}

// === impl Lru ===

impl<V: Clone> Lru<V> {
    /// A map of at most `max` entries (none when 0).
    pub fn new(max: usize) -> Lru<V> {
        Lru {
            max,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<V> {
        self.tick += 1;
        let (value, used) = self.entries.get_mut(key)?;
        let key = self.order.remove(used).expect("lru order");
        *used = self.tick;
        let value = value.clone();
        self.order.insert(self.tick, key);
        Some(value)
    }

    pub fn insert(&mut self, key: String, value: V) {
        if self.max == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, used)) = self.entries.insert(key.clone(), (value, self.tick)) {
            self.order.remove(&used);
        }
        self.order.insert(self.tick, key);
        while self.entries.len() > self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Lru;

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut lru: Lru<Arc<str>> = Lru::new(2);
        lru.insert("a".into(), "A".into());
        lru.insert("b".into(), "B".into());
        assert!(lru.get("a").is_some());
        lru.insert("c".into(), "C".into());
        assert!(lru.get("b").is_none(), "b was the least recently used");
        assert!(lru.get("a").is_some() && lru.get("c").is_some());
        lru.insert("a".into(), "A2".into());
        assert_eq!(lru.entries.len(), 2);
        assert_eq!(lru.order.len(), 2);
        assert_eq!(&*lru.get("a").unwrap(), "A2");
    }

    #[test]
    fn a_map_of_zero_keeps_nothing() {
        let mut lru: Lru<u8> = Lru::new(0);
        lru.insert("a".into(), 1);
        assert!(lru.get("a").is_none());
    }
}
