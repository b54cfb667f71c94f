//! SDP (RFC 8866) parsing and RFC 3264 offer/answer for Chorus.
