//! Feeds arbitrary bytes to the HJ 212 decoder: it must refuse with a reason or decode, never
//! panic; and whatever it accepts must re-encode to a frame that decodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riverwatch::domain::hj212::{data, parse, CodeMap, Reassembly};

fuzz_target!(|bytes: &[u8]| {
    let Ok(frame) = parse(bytes) else { return };
    let _ = data(&frame, &CodeMap::default());
    let again = parse(frame.encode().as_bytes()).expect("an accepted frame re-encodes");
    assert_eq!(again, frame);
    let mut r = Reassembly::default();
    if let Some(whole) = r.push(frame, chrono::DateTime::UNIX_EPOCH) {
        let _ = data(&whole, &CodeMap::default());
    }
});
