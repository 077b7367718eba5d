//! Intake's record extraction on the bench's realistic mail, against what it did before the
//! structure walk (the header block alone for a single text body, mail-parser's full parse for
//! everything else) in the same run: µs per message for each kind of the mix, and the ratio.
//! Every message's record is also checked to be the full parse's. `bench/extract.sh` runs it.
//!
//!   extractbench [--mix 10k|full] [--seed 1] [--messages 20000]

#[path = "../common/args.rs"]
#[allow(dead_code)]
mod args;
#[path = "../loadgen/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::hint::black_box;
use std::time::Instant;

use mailroom::intake::extract::headers_suffice;
use mailroom::intake::record::{extract, full_parse, parse_headers};
use mailroom::intake::structure;

fn main() {
    let mail = args::mail();
    let (messages, corpus) = (mail.messages, &mail.corpus);

    // The messages as the server receives them (without our trace header), grouped by kind.
    let mut by_kind: Vec<Vec<Vec<u8>>> = vec![Vec::new(); corpus.kinds()];
    for i in 0..messages {
        let (k, raw) = mail.message(i, "support@example.com");
        by_kind[k].push(raw);
    }

    // Before: the header block when it sufficed (as now), else the full parse.
    let suffices = |raw: &[u8]| mail_parser::MessageParser::default().parse_headers(raw).is_some_and(|h| headers_suffice(&h));
    let before = |raw: &[u8], suffices: bool| if suffices { extract(raw) } else { full_parse(raw) };
    println!("| kind | messages | mean size | walked | before µs/msg | now µs/msg | now / before |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut full_total, mut now_total, mut count) = (0.0, 0.0, 0usize);
    for (k, raws) in by_kind.iter().enumerate() {
        if raws.is_empty() {
            continue;
        }
        let walked = raws
            .iter()
            .filter(|raw| {
                let headers = parse_headers(raw);
                headers
                    .message
                    .as_ref()
                    .and_then(|m| m.parts.first())
                    .is_some_and(|root| structure::attachments(raw, root, headers.body).is_some())
            })
            .count();
        for raw in raws {
            assert_eq!(extract(raw), full_parse(raw), "a {} message's record differs from the full parse", corpus.kind(k).name());
        }
        let short: Vec<bool> = raws.iter().map(|raw| suffices(raw)).collect();
        // Alternate the two a few times and keep each one's best pass: the machine is shared.
        let (mut full_best, mut now_best) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let start = Instant::now();
            for (raw, &short) in raws.iter().zip(&short) {
                black_box(before(black_box(raw), short));
            }
            full_best = full_best.min(start.elapsed().as_secs_f64());
            let start = Instant::now();
            for raw in raws {
                black_box(extract(black_box(raw)));
            }
            now_best = now_best.min(start.elapsed().as_secs_f64());
        }
        let n = raws.len() as f64;
        let mean = raws.iter().map(Vec::len).sum::<usize>() as f64 / n;
        println!(
            "| {} | {} | {:.1} KB | {} | {:.1} | {:.1} | {:.2} |",
            corpus.kind(k).name(),
            raws.len(),
            mean / 1024.0,
            walked,
            full_best * 1e6 / n,
            now_best * 1e6 / n,
            now_best / full_best
        );
        full_total += full_best;
        now_total += now_best;
        count += raws.len();
    }
    println!(
        "| **all** | {count} | | | {:.1} | {:.1} | **{:.2}** |",
        full_total * 1e6 / count as f64,
        now_total * 1e6 / count as f64,
        now_total / full_total
    );
}
