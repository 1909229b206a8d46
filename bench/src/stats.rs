//! Median, minimum and maximum of a figure's runs.

/// A figure over several runs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
    /// How many runs.
    pub runs: usize,
}

/// Summarizes `samples`; `None` when there are none (or any is not a number).
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    Some(Summary { median, min: sorted[0], max: sorted[sorted.len() - 1], runs: sorted.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_counts() {
        let odd = summarize(&[3.0, 1.0, 2.0]).expect("summary");
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (2.0, 1.0, 3.0, 3));
        let even = summarize(&[4.0, 1.0, 2.0, 10.0]).expect("summary");
        assert_eq!((even.median, even.min, even.max), (3.0, 1.0, 10.0));
        let one = summarize(&[5.0]).expect("summary");
        assert_eq!((one.median, one.min, one.max), (5.0, 5.0, 5.0));
    }

    #[test]
    fn nothing_to_summarize() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[1.0, f64::NAN]), None);
    }
}
