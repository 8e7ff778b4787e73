//! The limits an operator puts on each instance. They live here, below the
//! pool, because pre-initialization (`runtime::preinit`) runs a snapshot
//! instance under the same limits as the instances the pool creates.

use crate::runtime::engine::DEFAULT_MAX_INSTANCES;
use std::time::Duration;

/// Limits the operator sets.
#[derive(Clone, Debug)]
pub struct InstanceLimits {
    /// Hard cap on one instance's linear memory, in bytes; growing past it traps.
    pub max_memory: Option<u64>,
    /// Wall-clock limit on one call (and on instantiation).
    pub timeout: Option<Duration>,
    /// Instances alive at once (serving, idle or warm); creating one more
    /// waits until one ends.
    pub max_instances: usize,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            max_memory: None,
            timeout: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}
