//! Splitting tags across subscriptions and service calls so no request exceeds the
//! server's operation limits. Pure: no I/O, so the rules are tested without a server.

use std::fmt;

use crate::config::{Acquisition, LimitOverrides};

/// What the server accepts per call and per session, after the source's own caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// MaxMonitoredItemsPerCall.
    pub items_per_call: usize,
    /// MaxNodesPerRead.
    pub nodes_per_read: usize,
    /// MaxMonitoredItemsPerSubscription.
    pub items_per_subscription: usize,
    /// MaxSubscriptionsPerSession.
    pub subscriptions: usize,
}

/// Used where the server states no limit (0 or absent): large servers still get
/// moderately sized requests.
pub const DEFAULT_ITEMS_PER_CALL: usize = 1000;
pub const DEFAULT_NODES_PER_READ: usize = 1000;
pub const DEFAULT_ITEMS_PER_SUBSCRIPTION: usize = 10_000;

/// The values the server reports, in the order they are read: MaxMonitoredItemsPerCall,
/// MaxNodesPerRead, MaxMonitoredItemsPerSubscription, MaxSubscriptionsPerSession
/// (`None` or 0: not stated).
pub type ServerLimits = [Option<u32>; 4];

impl Limits {
    pub fn new(server: ServerLimits, caps: LimitOverrides) -> Limits {
        let pick = |server: Option<u32>, cap: u32, default: usize| -> usize {
            let server = server.filter(|v| *v > 0).map(|v| v as usize);
            let cap = (cap > 0).then_some(cap as usize);
            match (server, cap) {
                (Some(s), Some(c)) => s.min(c),
                (Some(s), None) => s,
                (None, Some(c)) => c,
                (None, None) => default,
            }
        };
        Limits {
            items_per_call: pick(server[0], caps.items_per_call, DEFAULT_ITEMS_PER_CALL),
            nodes_per_read: pick(server[1], caps.nodes_per_read, DEFAULT_NODES_PER_READ),
            items_per_subscription: pick(
                server[2],
                caps.items_per_subscription,
                DEFAULT_ITEMS_PER_SUBSCRIPTION,
            ),
            subscriptions: pick(server[3], caps.subscriptions, usize::MAX),
        }
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} items per call, {} nodes per read, {} items per subscription, ",
            self.items_per_call, self.nodes_per_read, self.items_per_subscription
        )?;
        if self.subscriptions == usize::MAX {
            f.write_str("subscriptions unlimited")
        } else {
            write!(f, "{} subscriptions", self.subscriptions)
        }
    }
}

/// One subscription to create: its group and its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionPlan {
    pub group: usize,
    pub tags: Vec<u32>,
}

/// Tags read together every period of their group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPlan {
    pub group: usize,
    pub tags: Vec<u32>,
}

/// Where every tag goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub subscriptions: Vec<SubscriptionPlan>,
    pub polls: Vec<PollPlan>,
    /// Tags of subscribe groups that did not fit into MaxSubscriptionsPerSession and are
    /// polled instead (also listed in `polls`).
    pub overflow: usize,
}

impl Plan {
    /// CreateMonitoredItems calls needed for all subscriptions.
    pub fn create_calls(&self, limits: &Limits) -> usize {
        self.subscriptions
            .iter()
            .map(|s| s.tags.len().div_ceil(limits.items_per_call.max(1)))
            .sum()
    }

    /// Read calls per cycle of all poll groups.
    pub fn reads_per_cycle(&self, limits: &Limits) -> usize {
        self.polls
            .iter()
            .map(|p| p.tags.len().div_ceil(limits.nodes_per_read.max(1)))
            .sum()
    }

    pub fn subscribed(&self) -> usize {
        self.subscriptions.iter().map(|s| s.tags.len()).sum()
    }

    pub fn polled(&self) -> usize {
        self.polls.iter().map(|p| p.tags.len()).sum()
    }
}

/// Distributes `tags` (tag index, group index) over subscriptions of at most
/// `items_per_subscription` items, one set per subscribe group, up to the subscription
/// limit; the rest, and poll groups, are polled.
pub fn plan(tags: &[(u32, usize)], acquisition: &[Acquisition], limits: &Limits) -> Plan {
    let mut plan = Plan::default();
    let per_subscription = limits.items_per_subscription.max(1);
    for (group, mode) in acquisition.iter().enumerate() {
        let members: Vec<u32> = tags
            .iter()
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| *t)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut polled = Vec::new();
        match mode {
            Acquisition::Poll => polled = members,
            Acquisition::Subscribe => {
                for chunk in members.chunks(per_subscription) {
                    if plan.subscriptions.len() < limits.subscriptions {
                        plan.subscriptions.push(SubscriptionPlan {
                            group,
                            tags: chunk.to_vec(),
                        });
                    } else {
                        plan.overflow += chunk.len();
                        polled.extend_from_slice(chunk);
                    }
                }
            }
        }
        if !polled.is_empty() {
            plan.polls.push(PollPlan { group, tags: polled });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(call: usize, read: usize, per_sub: usize, subs: usize) -> Limits {
        Limits {
            items_per_call: call,
            nodes_per_read: read,
            items_per_subscription: per_sub,
            subscriptions: subs,
        }
    }

    #[test]
    fn server_limits_are_capped_by_the_source_and_defaulted_when_unstated() {
        let caps = LimitOverrides {
            items_per_call: 50,
            ..LimitOverrides::default()
        };
        let l = Limits::new([Some(100), Some(0), None, Some(4)], caps);
        assert_eq!(
            l,
            limits(50, DEFAULT_NODES_PER_READ, DEFAULT_ITEMS_PER_SUBSCRIPTION, 4)
        );
        let l = Limits::new([Some(10), Some(20), Some(30), None], LimitOverrides::default());
        assert_eq!(l, limits(10, 20, 30, usize::MAX));
    }

    #[test]
    fn five_thousand_items_split_by_subscription_and_call_limits() {
        let tags: Vec<(u32, usize)> = (0..5000).map(|t| (t, 0)).collect();
        let l = limits(100, 250, 1000, 20);
        let p = plan(&tags, &[Acquisition::Subscribe], &l);
        assert_eq!(p.subscriptions.len(), 5);
        assert!(p.subscriptions.iter().all(|s| s.tags.len() == 1000));
        assert_eq!(p.create_calls(&l), 50);
        assert_eq!((p.subscribed(), p.polled(), p.overflow), (5000, 0, 0));
        let mut all: Vec<u32> = p.subscriptions.iter().flat_map(|s| s.tags.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..5000).collect::<Vec<_>>());
    }

    #[test]
    fn items_beyond_the_subscription_limit_are_polled_not_dropped() {
        let tags: Vec<(u32, usize)> = (0..25).map(|t| (t, usize::from(t >= 20))).collect();
        let l = limits(10, 4, 10, 1);
        let p = plan(&tags, &[Acquisition::Subscribe, Acquisition::Poll], &l);
        assert_eq!(
            p.subscriptions,
            vec![SubscriptionPlan {
                group: 0,
                tags: (0..10).collect()
            }]
        );
        assert_eq!(p.overflow, 10);
        assert_eq!(
            p.polls[0],
            PollPlan {
                group: 0,
                tags: (10..20).collect()
            }
        );
        assert_eq!(
            p.polls[1],
            PollPlan {
                group: 1,
                tags: (20..25).collect()
            }
        );
        // 10 tags in 4-node reads, then 5 tags: 3 + 2.
        assert_eq!(p.reads_per_cycle(&l), 5);
    }
}
