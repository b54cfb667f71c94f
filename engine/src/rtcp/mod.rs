//! RTCP (RFC 3550, 4585, 5104) packets, compound parsing and RTP/RTCP demultiplexing.
