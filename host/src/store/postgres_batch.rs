//! Set-based Postgres writes: a batch's rows go to one statement as one
//! array per column (`UNNEST($1::text[], ...)`), one round trip whatever
//! the batch's size, where a statement per row cost a round trip each.
//!
//! A batch is split into rounds in which no key repeats, so that each
//! round's statement still means what applying its rows one by one means:
//! an `UPDATE ... FROM UNNEST(...)` that joins one target row twice applies
//! only one of the two, and which one is unspecified; an `INSERT ... ON
//! CONFLICT DO UPDATE` fails outright. A key's second row goes to the next
//! round, after its first has been applied; a batch without repeats (the
//! normal case) is one round.

use std::collections::HashMap;

/// The positions of `keys`, in rounds: each key at most once per round,
/// a key's occurrences in order across rounds, positions ascending within
/// a round.
pub(super) fn rounds<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (position, key) in keys.into_iter().enumerate() {
        let round = seen.entry(key).or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push(position);
        *round += 1;
    }
    rounds
}

/// One column of `rows`, to bind as one array parameter.
pub(super) fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

#[cfg(test)]
mod tests {
    use super::{column, rounds};

    #[test]
    fn distinct_keys_are_one_round() {
        assert_eq!(rounds(["a", "b", "c"]), vec![vec![0, 1, 2]]);
        assert!(rounds([]).is_empty());
    }

    #[test]
    fn a_repeated_key_waits_for_the_next_round_in_order() {
        assert_eq!(
            rounds(["a", "b", "a", "c", "a", "b"]),
            vec![vec![0, 1, 3], vec![2, 5], vec![4]]
        );
    }

    #[test]
    fn a_column_keeps_the_rows_order() {
        let rows = [("x", 1), ("y", 2)];
        assert_eq!(column(&rows, |(name, _)| *name), ["x", "y"]);
        assert_eq!(column(&rows, |(_, n)| i64::from(*n) * 10), [10, 20]);
    }
}
