//! What the load generator reads from the server it measures: any bytes
//! are parsed into answers or refused, never a panic or a hang.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use seckill_bench::client::read_answer;

/// Answers read from one connection, at most.
const MAX_ANSWERS: usize = 8;

fuzz_target!(|bytes: &[u8]| {
    let mut stream = bytes;
    let mut input = BytesMut::new();
    futures::executor::block_on(async {
        for _ in 0..MAX_ANSWERS {
            match read_answer(&mut stream, &mut input).await {
                Ok((_, true)) => {}
                Ok((_, false)) | Err(_) => break,
            }
        }
    });
});
