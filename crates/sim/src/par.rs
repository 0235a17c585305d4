//! A deterministic parallel map over a fleet's desktops (scoped threads,
//! one contiguous chunk per core): the results come back in order, so a
//! simulation adds them up in the same order whatever the core count.

/// `f(i, &items[i])` for every item, in order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    if threads <= 1 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, t)| f(c * chunk + j, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_order() {
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(
            super::map(&v, |i, x| (i as u64) * 10 + x),
            (0..1000).map(|x| x * 11).collect::<Vec<_>>()
        );
        assert!(super::map(&[] as &[u8], |_, x| *x).is_empty());
    }
}
