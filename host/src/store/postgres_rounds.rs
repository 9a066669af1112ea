//! Splits a batch of per-row writes into rounds in which no key repeats,
//! so that each round can be one set-based Postgres statement (rows passed
//! as arrays) and still mean what applying the rows one by one means.
//!
//! Why: an `UPDATE ... FROM UNNEST(...)` that joins one target row twice
//! applies only one of the two, and which one is unspecified; an
//! `INSERT ... ON CONFLICT DO UPDATE` fails outright. A key's second row
//! goes to the next round, after its first has been applied; a batch
//! without repeats (the normal case) is one round.

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

#[cfg(test)]
mod tests {
    use super::rounds;

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
}
