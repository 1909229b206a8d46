//! Property test mirroring the `sftp_request` fuzz target: whatever a client sends, the request
//! decoding path neither panics nor loses track of the stream.

use proptest::prelude::*;

/// A well-framed packet: length, then a type byte (mostly request types) and arbitrary payload.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    (prop_oneof![3u8..=20, Just(200u8), any::<u8>()], prop::collection::vec(any::<u8>(), 0..200))
        .prop_map(|(kind, payload)| {
            let mut packet = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
            packet.push(kind);
            packet.extend(payload);
            packet
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let summary = wharf_sftp::decode_client_bytes(&bytes);
        prop_assert_eq!(summary.packets, summary.requests + summary.malformed);
    }

    #[test]
    fn framed_packets_are_all_accounted_for(packets in prop::collection::vec(packet(), 0..20)) {
        let stream: Vec<u8> = packets.concat();
        let summary = wharf_sftp::decode_client_bytes(&stream);
        prop_assert_eq!(summary.stopped, None);
        prop_assert_eq!(summary.packets, packets.len());
    }
}
