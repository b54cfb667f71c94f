//! RTP (RFC 3550) packets, header extensions and receive statistics.
