//! Feeds arbitrary bytes to the HJ 212 decoder: it must refuse with a reason or decode, never
//! panic; and whatever it accepts must re-encode to a frame that decodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use riverwatch::domain::hj212::{data, parse, CodeMap, Reassembly, MAX_SEGMENT};

fuzz_target!(|bytes: &[u8]| {
    let Ok(frame) = parse(bytes) else { return };
    let _ = data(&frame, &CodeMap::default());
    // GBK text in CP is kept with U+FFFD for each undecodable byte, which can lengthen it past
    // the standard's 1,024 characters; any other accepted frame re-encodes to itself.
    if frame.segment().chars().count() <= MAX_SEGMENT {
        let again = parse(frame.encode().as_bytes()).expect("an accepted frame re-encodes");
        assert_eq!(again, frame);
    }
    let mut r = Reassembly::default();
    if let Ok(Some(whole)) = r.push(frame, chrono::DateTime::UNIX_EPOCH) {
        let _ = data(&whole, &CodeMap::default());
    }
});
