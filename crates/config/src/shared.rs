//! One shared copy of what many bindings repeat: their transform chains (most have the
//! same, often only the cast to the attribute's type) and names (attribute, source).
//! Without this every tag of a large configuration holds allocations of its own for them.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use backplane_model::Transform;

#[derive(Debug, Default)]
pub(crate) struct Names {
    shared: RefCell<HashSet<Arc<str>>>,
}

impl Names {
    /// The shared copy of `name`, made on first use.
    pub(crate) fn share(&self, name: &str) -> Arc<str> {
        let mut shared = self.shared.borrow_mut();
        if let Some(existing) = shared.get(name) {
            return existing.clone();
        }
        let name: Arc<str> = name.into();
        shared.insert(name.clone());
        name
    }
}

#[derive(Debug, Default)]
pub(crate) struct Chains {
    /// By the chain's `Debug` text: `Transform` holds floats, so it has no `Hash` or `Eq`.
    shared: RefCell<HashMap<String, Arc<[Transform]>>>,
}

impl Chains {
    /// The shared copy of `chain`, made on first use.
    pub(crate) fn share(&self, chain: Vec<Transform>) -> Arc<[Transform]> {
        let key = format!("{chain:?}");
        let mut shared = self.shared.borrow_mut();
        match shared.get(&key) {
            Some(existing) if **existing == *chain => existing.clone(),
            // The same text for unequal chains (a NaN is unequal to itself): kept apart.
            Some(_) => chain.into(),
            None => {
                let chain: Arc<[Transform]> = chain.into();
                shared.insert(key, chain.clone());
                chain
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use backplane_model::{DataType, ScalarType};

    use super::*;

    fn cast(to: ScalarType) -> Transform {
        Transform::Cast {
            to: DataType::Scalar(to),
        }
    }

    #[test]
    fn equal_chains_share_one_allocation_and_different_ones_do_not() {
        let chains = Chains::default();
        let a = chains.share(vec![cast(ScalarType::UInt)]);
        let b = chains.share(vec![cast(ScalarType::UInt)]);
        let c = chains.share(vec![cast(ScalarType::Float)]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, [cast(ScalarType::Float)]);
    }

    #[test]
    fn equal_names_share_one_allocation() {
        let names = Names::default();
        let a = names.share("speed");
        let b = names.share(&String::from("speed"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*names.share("state"), "state");
    }

    #[test]
    fn a_chain_unequal_to_itself_is_never_shared() {
        let chains = Chains::default();
        let nan = || Transform::Scale {
            gain: f64::NAN,
            offset: 0.0,
            raw: None,
            eng: None,
        };
        let a = chains.share(vec![nan()]);
        let b = chains.share(vec![nan()]);
        assert!(!Arc::ptr_eq(&a, &b));
    }
}
