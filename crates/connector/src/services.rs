//! [`Services`]: what stages and kinds offer to sinks and the API, found by type and name
//! (the production command handle, each historian's store), so neither the engine nor the
//! connector interface has to know those types.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

type Entry = Arc<dyn Any + Send + Sync>;
/// The type's name (for `Debug`) beside the service.
type Named = (&'static str, Entry);

/// A read-only map from (type, name) to a shared service.
#[derive(Clone, Default)]
pub struct Services {
    map: Arc<BTreeMap<(TypeId, String), Named>>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.map
                    .iter()
                    .map(|((_, name), (ty, _))| format!("{ty} `{name}`")),
            )
            .finish()
    }
}

impl Services {
    /// One service of type `T` under `name`.
    pub fn one<T: Any + Send + Sync>(name: &str, service: Arc<T>) -> Services {
        let mut services = Services::default();
        services.insert(name, service);
        services
    }

    /// Adds (or replaces) the service of type `T` called `name`.
    pub fn insert<T: Any + Send + Sync>(&mut self, name: &str, service: Arc<T>) {
        Arc::make_mut(&mut self.map).insert(
            (TypeId::of::<T>(), name.to_owned()),
            (std::any::type_name::<T>(), service as Entry),
        );
    }

    /// Adds every service of `other`.
    pub fn extend(&mut self, other: &Services) {
        let map = Arc::make_mut(&mut self.map);
        for (key, value) in other.map.iter() {
            map.insert(key.clone(), value.clone());
        }
    }

    /// The service of type `T` called `name`.
    /// The services offered under any of `names`, of every type.
    pub fn only(&self, names: &std::collections::BTreeSet<String>) -> Services {
        Services {
            map: Arc::new(
                self.map
                    .iter()
                    .filter(|((_, name), _)| names.contains(name))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }
    }

    pub fn named<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        let (_, entry) = self.map.get(&(TypeId::of::<T>(), name.to_owned()))?;
        entry.clone().downcast::<T>().ok()
    }

    /// The first service of type `T` (by name), for types there is usually one of.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.all::<T>().into_iter().next().map(|(_, s)| s)
    }

    /// Every service of type `T`, by name.
    pub fn all<T: Any + Send + Sync>(&self) -> Vec<(&str, Arc<T>)> {
        let id = TypeId::of::<T>();
        self.map
            .iter()
            .filter(|((t, _), _)| *t == id)
            .filter_map(|((_, name), (_, entry))| Some((name.as_str(), entry.clone().downcast::<T>().ok()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Store(&'static str);

    #[test]
    fn services_are_found_by_type_and_name() {
        let mut services = Services::one("b", Arc::new(Store("second")));
        services.insert("a", Arc::new(Store("first")));
        services.insert("a", Arc::new(7u32));
        assert_eq!(services.named::<Store>("b").as_deref(), Some(&Store("second")));
        assert_eq!(services.get::<Store>().as_deref(), Some(&Store("first")));
        let names: Vec<&str> = services.all::<Store>().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(services.get::<u32>().as_deref(), Some(&7));
        assert!(services.get::<String>().is_none());
    }
}
