//! Sequences of [`crate::Message`] with a most-elements bound, checked while
//! decoding. Each element of a sequence takes a few bytes on the wire but up
//! to some hundreds in memory (an empty `String` is 1 byte encoded and 24
//! bytes decoded), so without a bound one frame under the frame limit could
//! decode into gigabytes. With one, what a frame decodes into stays within
//! its own size plus at most a few MiB. The encoding is unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

use crate::{DIRTY_BATCH_PAGES, MAX_FETCH_BYTES, PAGE_SIZE};

/// Most QEMU arguments in the retired [`crate::LegacyMachineDesc`], decoded
/// only to be refused (the current `MachineDesc` has none).
pub const MAX_LEGACY_EXTRA_ARGS: usize = 1024;
/// Most ranges in a `Fetch`, and chunks in its answer: every range is at
/// least a page, and a fetch at most [`MAX_FETCH_BYTES`].
pub const MAX_RANGES: usize = (MAX_FETCH_BYTES / PAGE_SIZE) as usize;
/// Most VMs in a status reply.
pub const MAX_STATUS_VMS: usize = 65_536;

struct Bounded<T> {
    max: usize,
    what: &'static str,
    elem: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} {}", self.max, self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let hint = seq.size_hint().unwrap_or(0);
        if hint > self.max {
            return Err(A::Error::invalid_length(hint, &self));
        }
        let mut out = Vec::with_capacity(hint);
        while let Some(x) = seq.next_element()? {
            if out.len() == self.max {
                return Err(A::Error::invalid_length(self.max + 1, &self));
            }
            out.push(x);
        }
        Ok(out)
    }
}

fn bounded<'de, D, T>(d: D, max: usize, what: &'static str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(Bounded {
        max,
        what,
        elem: PhantomData,
    })
}

pub(crate) fn legacy_extra_args<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded(d, MAX_LEGACY_EXTRA_ARGS, "QEMU arguments")
}

pub(crate) fn ranges<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded(d, MAX_RANGES, "ranges or chunks")
}

pub(crate) fn pages<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded(d, DIRTY_BATCH_PAGES, "pages")
}

pub(crate) fn vms<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded(d, MAX_STATUS_VMS, "VMs")
}
