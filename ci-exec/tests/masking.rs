//! Property tests of masking through the log pipeline: random secrets (overlapping and
//! multi-line ones too) and random chunkings of a stream containing them.

use bytes::Bytes;
use ci_exec::mask::Masker;
use ci_exec::{Chunk, LogEvent, LogPipeline, Stream};
use proptest::prelude::*;

fn stream(pipeline: &mut LogPipeline, text: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    let collect = |events: Vec<LogEvent>, out: &mut Vec<u8>| {
        for e in events {
            if let LogEvent::Output { data, .. } = e {
                out.extend_from_slice(&data);
            }
        }
    };
    for p in points.into_iter().chain([text.len()]) {
        let chunk = Chunk {
            stream: Stream::Stdout,
            data: Bytes::copy_from_slice(&text[last..p]),
        };
        collect(pipeline.push(&chunk), &mut out);
        last = p;
    }
    collect(pipeline.finish(), &mut out);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn single_line_secrets_are_masked_whatever_the_chunking(
        secrets in prop::collection::vec("[a-d]{1,6}", 1..6),
        filler in prop::collection::vec("[a-e\n ]{0,8}", 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        // The text interleaves filler with the secrets, so occurrences (and overlaps) abound.
        let mut text = String::new();
        for (i, f) in filler.iter().enumerate() {
            text.push_str(f);
            text.push_str(&secrets[i % secrets.len()]);
        }
        let mut pipeline = LogPipeline::new(&secrets);
        let out = stream(&mut pipeline, text.as_bytes(), &cuts);
        let reference = Masker::new(&secrets).mask(text.as_bytes());
        prop_assert_eq!(&out, &reference, "streamed output differs from masking the whole text");
        for s in &secrets {
            prop_assert!(!contains(&out, s.as_bytes()), "secret {:?} leaked in {:?}", s, String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn multi_line_secrets_never_leak_a_line(
        lines in prop::collection::vec("[A-Z]{4,8}", 2..4),
        before in "[a-z \n]{0,30}",
        after in "[a-z \n]{0,30}",
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let secret = lines.join("\n");
        let text = format!("{before}{secret}{after}\n");
        let mut pipeline = LogPipeline::new(&[secret.as_str()]);
        let out = stream(&mut pipeline, text.as_bytes(), &cuts);
        for line in &lines {
            prop_assert!(!contains(&out, line.as_bytes()), "line {:?} leaked", line);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut pipeline = LogPipeline::new(&["secret", "::"]);
        let _ = stream(&mut pipeline, &data, &cuts);
    }
}
