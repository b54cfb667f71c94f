//! SIP messages: parsing, access, serialization, stream framing, limits.
