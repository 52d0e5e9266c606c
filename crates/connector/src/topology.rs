//! The plan compiled into dense tables: assets as a tree, tags by [`TagId`], and for every
//! source the list of addresses it must read and the tags each address feeds. Built once
//! at start; everything on the hot path is an index into these vectors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::Plan;
use backplane_model::model::Binding;
use backplane_model::{AssetPath, Attribute, Context, Deadband, Level, Model, TagId, Transform};

use crate::path_index::PathIndex;
use crate::tag_path::TagPath;

/// One asset of the tree.
#[derive(Debug)]
pub struct AssetNode {
    pub path: AssetPath,
    pub level: Level,
    pub description: Option<String>,
    pub model: Option<Arc<Model>>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// One tag per model attribute, in model order.
    pub tags: Vec<TagId>,
    /// Context set on the asset by the configuration.
    pub initial_context: Context,
    /// The asset's narrowing of its model's write allowlist (`writes` in `[[assets]]`).
    pub writes: Option<Vec<String>>,
}

impl AssetNode {
    /// Its model's name; empty for an asset without a model (which has no tags).
    pub fn model_name(&self) -> &str {
        self.model.as_ref().map_or("", |m| m.name.as_str())
    }

    /// The path of `tag`, one of this asset's tags.
    pub fn tag_path<'a>(&'a self, tag: &'a TagInfo) -> TagPath<'a> {
        TagPath {
            asset: self.path.as_str(),
            attribute: &tag.attribute.name,
        }
    }
}

/// The path of `tag` among `assets` (an empty asset part if its asset is not there).
pub(crate) fn tag_path<'a>(assets: &'a [AssetNode], tag: &'a TagInfo) -> TagPath<'a> {
    match assets.get(tag.asset) {
        Some(asset) => asset.tag_path(tag),
        None => TagPath {
            asset: "",
            attribute: &tag.attribute.name,
        },
    }
}

/// One attribute of one asset. 56 bytes, and nothing of its own on the heap: its path
/// ([`Topology::path`]) and model name ([`Topology::model_name`]) are its asset's, and
/// its binding's rule is shared.
#[derive(Debug)]
pub struct TagInfo {
    pub id: TagId,
    pub asset: usize,
    pub attribute: Arc<Attribute>,
    /// Where the value comes from; `None` for an attribute the instance leaves unbound.
    /// Moved here from the plan's asset, which keeps no copy.
    pub binding: Option<TagBinding>,
    /// Index of the source in [`Topology::sources`].
    pub source: Option<u32>,
}

/// A tag's binding as the topology keeps it: the configuration's [`Binding`] without the
/// two names the tag already has (its attribute, and its source as [`TagInfo::source`]),
/// and with what it does to readings shared ([`BindingRule`]): 24 bytes a tag instead of
/// 104. [`Topology::bound_plan`] puts the names back. Its rule's fields read as its own
/// (`binding.transforms`).
#[derive(Clone, Debug, PartialEq)]
pub struct TagBinding {
    /// Shared with the compiled topology's address list.
    pub address: Arc<str>,
    pub rule: Arc<BindingRule>,
}

/// What a binding does to its readings. One per distinct chain, deadband and age limit in
/// a topology (mostly one per model attribute or per source), shared by its bindings.
#[derive(Debug, PartialEq)]
pub struct BindingRule {
    /// Applied in order to the raw reading; ends with a cast to the attribute type.
    pub transforms: Arc<[Transform]>,
    pub deadband: Option<Deadband>,
    /// A value not read again within this time turns uncertain (`last_usable_value`).
    pub stale_after: Option<Duration>,
}

impl std::ops::Deref for TagBinding {
    type Target = BindingRule;

    fn deref(&self) -> &BindingRule {
        &self.rule
    }
}

/// The rules of one topology by their content, so equal ones are one allocation.
#[derive(Default)]
struct Rules(HashMap<RuleKey, Arc<BindingRule>>);

/// A rule's identity: its chain by address (chains are already shared by the
/// configuration), its deadband and age limit by value.
#[derive(PartialEq, Eq, Hash)]
struct RuleKey {
    transforms: usize,
    deadband: Option<(u8, u64, u64)>,
    stale_after: Option<Duration>,
}

impl Rules {
    fn binding(&mut self, binding: Binding) -> TagBinding {
        let key = RuleKey {
            transforms: Arc::as_ptr(&binding.transforms).cast::<()>() as usize,
            deadband: binding.deadband.map(|d| match d {
                Deadband::Absolute(v) => (0, v.to_bits(), 0),
                Deadband::Percent { percent, span } => (1, percent.to_bits(), span.to_bits()),
            }),
            stale_after: binding.stale_after,
        };
        let rule = self.0.entry(key).or_insert_with(|| {
            Arc::new(BindingRule {
                transforms: binding.transforms,
                deadband: binding.deadband,
                stale_after: binding.stale_after,
            })
        });
        TagBinding {
            address: binding.address,
            rule: rule.clone(),
        }
    }
}

/// What the engine knows of one configured source.
#[derive(Debug)]
pub struct SourceRoutes {
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    /// Distinct addresses read, in first-use order; readings index this.
    pub addresses: Vec<Arc<str>>,
    /// For each address, the tags it feeds (one address may feed several attributes).
    pub routes: Routes,
    /// Every tag this source feeds.
    pub tags: Vec<TagId>,
}

/// The tags each address of a source feeds, as one flat list: a reading's tags are found
/// with two reads of small arrays instead of a pointer to a list of its own per address
/// (which cost the pipeline a cache miss for every reading, and 40 bytes per address).
#[derive(Debug, Default)]
pub struct Routes {
    /// Where each address's tags start in `tags`; one more entry than there are addresses.
    starts: Vec<u32>,
    tags: Vec<TagId>,
}

impl Routes {
    /// From the tags of each address, in address order.
    pub fn from_lists(lists: Vec<Vec<TagId>>) -> Routes {
        let mut starts = Vec::with_capacity(lists.len() + 1);
        let mut tags = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        starts.push(0);
        for list in lists {
            tags.extend(list);
            // Tag ids are u32: there are never more routes than that.
            starts.push(u32::try_from(tags.len()).unwrap_or(u32::MAX));
        }
        Routes { starts, tags }
    }

    /// The tags `address` feeds; `None` past the last address.
    pub fn get(&self, address: usize) -> Option<&[TagId]> {
        let start = *self.starts.get(address)? as usize;
        let end = *self.starts.get(address + 1)? as usize;
        self.tags.get(start..end)
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::ops::Index<usize> for Routes {
    type Output = [TagId];

    fn index(&self, address: usize) -> &[TagId] {
        self.get(address).unwrap_or(&[])
    }
}

/// The compiled plan.
#[derive(Debug)]
pub struct Topology {
    /// The plan compiled; its assets' `bindings` are empty, moved into [`TagInfo::binding`]
    /// (one copy of every binding's strings, not two).
    pub plan: Plan,
    pub assets: Vec<AssetNode>,
    pub tags: Vec<TagInfo>,
    pub sources: Vec<SourceRoutes>,
    asset_index: HashMap<String, usize>,
    path_index: PathIndex,
}

impl Topology {
    pub fn new(mut plan: Plan) -> Topology {
        let mut assets: Vec<AssetNode> = Vec::with_capacity(plan.assets.len());
        let mut asset_index = HashMap::new();
        let tag_count: usize = plan
            .assets
            .iter()
            .filter_map(|a| a.model.as_ref())
            .map(|m| m.attributes.len())
            .sum();
        let mut tags: Vec<TagInfo> = Vec::with_capacity(tag_count);
        // Each source's addresses by text while building (a scan per binding would make a
        // source of 100k tags take minutes to compile).
        let mut address_index: Vec<HashMap<Arc<str>, usize>> = vec![HashMap::new(); plan.sources.len()];
        // Each source's tags by address while building, flattened into `Routes` at the end.
        let mut route_lists: Vec<Vec<Vec<TagId>>> = vec![Vec::new(); plan.sources.len()];
        let mut sources: Vec<SourceRoutes> = plan
            .sources
            .iter()
            .map(|s| SourceRoutes {
                name: s.name.clone(),
                kind: s.kind.clone(),
                enabled: s.enabled,
                addresses: Vec::new(),
                routes: Routes::default(),
                tags: Vec::new(),
            })
            .collect();
        let source_index: HashMap<&str, u32> = plan
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i as u32))
            .collect();

        let mut rules = Rules::default();

        // The plan lists parents before children, so every parent is already indexed.
        for spec in &mut plan.assets {
            let index = assets.len();
            let parent = spec
                .path
                .parent()
                .and_then(|p| asset_index.get(p.as_str()).copied());
            if let Some(p) = parent {
                let node: &mut AssetNode = &mut assets[p];
                node.children.push(index);
            }
            let mut node_tags = Vec::new();
            let mut bindings: Vec<Option<Binding>> =
                std::mem::take(&mut spec.bindings).into_iter().map(Some).collect();
            if let Some(model) = &spec.model {
                for attribute in &model.attributes {
                    let id = TagId(u32::try_from(tags.len()).unwrap_or(u32::MAX));
                    let binding = bindings
                        .iter_mut()
                        .find(|b| b.as_ref().is_some_and(|b| *b.attribute == *attribute.name))
                        .and_then(Option::take);
                    let source = binding
                        .as_ref()
                        .and_then(|b| source_index.get(&*b.source).copied());
                    if let (Some(b), Some(s)) = (&binding, source) {
                        let routes = &mut sources[s as usize];
                        let lists = &mut route_lists[s as usize];
                        let index = &mut address_index[s as usize];
                        let address = match index.get(&*b.address) {
                            Some(&a) => a,
                            None => {
                                routes.addresses.push(b.address.clone());
                                lists.push(Vec::new());
                                index.insert(b.address.clone(), routes.addresses.len() - 1);
                                routes.addresses.len() - 1
                            }
                        };
                        lists[address].push(id);
                        routes.tags.push(id);
                    }
                    tags.push(TagInfo {
                        id,
                        asset: index,
                        attribute: attribute.clone(),
                        binding: binding.map(|b| rules.binding(b)),
                        source,
                    });
                    node_tags.push(id);
                }
            }
            asset_index.insert(spec.path.as_str().to_owned(), index);
            assets.push(AssetNode {
                path: spec.path.clone(),
                level: spec.level,
                description: spec.description.clone(),
                model: spec.model.clone(),
                parent,
                children: Vec::new(),
                tags: node_tags,
                initial_context: spec.context.clone(),
                writes: spec.writes.clone(),
            });
        }
        for (routes, lists) in sources.iter_mut().zip(route_lists) {
            routes.routes = Routes::from_lists(lists);
            // Grown one address at a time: up to twice the room they need, per tag.
            routes.addresses.shrink_to_fit();
            routes.tags.shrink_to_fit();
        }
        let path_index = PathIndex::new(&assets, &tags);
        Topology {
            plan,
            assets,
            path_index,
            tags,
            sources,
            asset_index,
        }
    }

    /// The plan as configured, bindings included (put back from the tags): what a reload
    /// compares the new configuration with. A copy made on demand, not kept.
    pub fn bound_plan(&self) -> Plan {
        let mut plan = self.plan.clone();
        let index: HashMap<&str, usize> = plan
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.path.as_str(), i))
            .collect();
        let mut bindings: Vec<Vec<Binding>> = vec![Vec::new(); plan.assets.len()];
        let source_names: Vec<Arc<str>> = self.sources.iter().map(|s| Arc::from(s.name.as_str())).collect();
        for tag in &self.tags {
            // Every bound tag has its source: configuration validation refuses a binding
            // to a source the plan does not have.
            if let (Some(binding), Some(source), Some(&i)) = (
                &tag.binding,
                tag.source.and_then(|s| source_names.get(s as usize)),
                index.get(self.assets[tag.asset].path.as_str()),
            ) {
                bindings[i].push(Binding {
                    attribute: tag.attribute.name.as_str().into(),
                    source: source.clone(),
                    address: binding.address.clone(),
                    transforms: binding.transforms.clone(),
                    deadband: binding.deadband,
                    stale_after: binding.stale_after,
                });
            }
        }
        for (asset, bound) in plan.assets.iter_mut().zip(bindings) {
            asset.bindings = bound;
        }
        plan
    }

    pub fn asset_index(&self, path: &str) -> Option<usize> {
        self.asset_index.get(path.trim_end_matches('/')).copied()
    }

    pub fn asset(&self, path: &str) -> Option<&AssetNode> {
        self.asset_index(path).map(|i| &self.assets[i])
    }

    pub fn tag(&self, id: TagId) -> Option<&TagInfo> {
        self.tags.get(id.index())
    }

    /// Looks a tag up by `asset/attribute` path.
    pub fn tag_by_path(&self, path: &str) -> Option<&TagInfo> {
        self.tag_at(TagPath::split(path)?)
    }

    /// Looks a tag up by its path's parts (another topology's tag, say).
    pub fn tag_at(&self, path: TagPath<'_>) -> Option<&TagInfo> {
        self.path_index
            .get(&self.assets, &self.tags, path)
            .and_then(|id| self.tag(id))
    }

    /// `tag`'s path, `asset/attribute`.
    pub fn path<'a>(&'a self, tag: &'a TagInfo) -> TagPath<'a> {
        tag_path(&self.assets, tag)
    }

    /// The name of `tag`'s model.
    pub fn model_name(&self, tag: &TagInfo) -> &str {
        self.assets.get(tag.asset).map_or("", AssetNode::model_name)
    }

    /// Index of the root asset (the enterprise).
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.assets
            .iter()
            .enumerate()
            .filter(|(_, a)| a.parent.is_none())
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_give_each_address_its_own_tags_in_order() {
        let routes = Routes::from_lists(vec![vec![TagId(4)], vec![], vec![TagId(1), TagId(7)]]);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes.get(0), Some(&[TagId(4)][..]));
        assert_eq!(routes.get(1), Some(&[][..]));
        assert_eq!(routes.get(2), Some(&[TagId(1), TagId(7)][..]));
        assert_eq!(routes.get(3), None);
        assert_eq!(&routes[2], &[TagId(1), TagId(7)][..]);
        assert!(routes[9].is_empty());
        assert!(Routes::default().is_empty());
        assert_eq!(Routes::default().get(0), None);
    }
}
