//! Real-world offers shared by the SDP tests, written out inline (CRLF as sent).

/// baresip 1.0: Opus and G.711 over RTP/SAVP with one AES_CM_128_HMAC_SHA1_80 key,
/// rtcp-mux.
pub(crate) const BARESIP: &str = "v=0\r\n\
o=- 1283431436 3069329389 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10120 RTP/SAVP 115 0 8 101\r\n\
b=AS:64\r\n\
a=rtpmap:115 opus/48000/2\r\n\
a=fmtp:115 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp-mux\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2901123541 cname:sip:alice@127.0.0.1\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR\r\n\
a=ptime:20\r\n";

/// linphone 5.1: many codecs, three telephone-event rates, a=rtcp, plain RTP/AVP.
pub(crate) const LINPHONE: &str = "v=0\r\n\
o=alice 3052 1538 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 9 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp:7079\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// sipp 3.6 default UAC: PCMU and telephone-event/8000 at 101, no crypto.
pub(crate) const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-11\r\n\
a=sendrecv\r\n";

/// A carrier SBC trunk: PCMA first, PCMU, events at 100, ptime 20, a=rtcp, no rtcp-mux,
/// bare LF line ends and trailing spaces.
pub(crate) const CARRIER: &str = "v=0\n\
o=Sonus_UAC 27489 12804 IN IP4 203.0.113.7 \n\
s=SIP Media Capabilities\n\
c=IN IP4 203.0.113.7\n\
t=0 0\n\
m=audio 41000 RTP/AVP 8 0 100  \n\
b=AS:64\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:100 telephone-event/8000\n\
a=fmtp:100 0-15\n\
a=sendrecv\n\
a=ptime:20\n\
a=maxptime:40\n\
a=rtcp:41001\n";

/// A browser-like offer with SDES on RTP/SAVPF (GCM and CM keys), BUNDLE, ICE attributes
/// and a video m-line.
pub(crate) const WEBRTCISH: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 RTP/SAVPF 111 103 0 8 110 126\r\n\
c=IN IP4 198.51.100.4\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fz3x\r\n\
a=ice-pwd:n0t4r3alp4ssw0rdf0rt3sts\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:103 ISAC/16000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=maxptime:120\r\n\
a=crypto:1 AEAD_AES_128_GCM inline:IkdskbbbACVKb5S53gMoTXKXvOEGK1B1mr/kCQ==\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR\r\n\
a=ssrc:1111111111 cname:bXlDTmFtZQ\r\n\
a=ssrc:1111111111 msid:stream audio0\r\n\
m=video 9 RTP/SAVPF 96 97\r\n\
c=IN IP4 198.51.100.4\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:IUZrkLXa/yRJbpO43QInTHGWu+AFKk90mb7jCC1S\r\n";

/// RTP/SAVP with four suites; the AEAD_AES_256_GCM key is unpadded base64.
pub(crate) const GCM_AND_CM: &str = "v=0\r\n\
o=- 20518 0 IN IP4 10.1.1.1\r\n\
s=-\r\n\
c=IN IP4 10.1.1.1\r\n\
t=0 0\r\n\
m=audio 20000 RTP/SAVP 0 101\r\n\
a=crypto:1 AEAD_AES_128_GCM inline:IkdskbbbACVKb5S53gMoTXKXvOEGK1B1mr/kCQ\r\n\
a=crypto:2 AEAD_AES_256_GCM inline:Mld8ocbrEDVaf6TJ7hM4XYKnzPEWO2CFqs/0GT5jiK3S9xxBZouw1fofRGk\r\n\
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR|2^31\r\n\
a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:IUZrkLXa/yRJbpO43QInTHGWu+AFKk90mb7jCC1S\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// A desk phone's "best effort SRTP": RTP/AVP carrying a crypto line.
pub(crate) const AVP_WITH_CRYPTO: &str = "v=0\r\n\
o=- 20020 20020 IN IP4 192.168.0.33\r\n\
s=SDP data\r\n\
c=IN IP4 192.168.0.33\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 0 8 18 9 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:IEVqj7TZ/iNIbZK33AEmS3CVut8EKU5zmL3iByxR\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// Only codecs we do not have.
pub(crate) const UNKNOWN_CODECS: &str = "v=0\r\n\
o=- 1 1 IN IP4 10.0.0.9\r\n\
s=-\r\n\
c=IN IP4 10.0.0.9\r\n\
t=0 0\r\n\
m=audio 5000 RTP/AVP 18 97 98\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:97 iLBC/8000\r\n\
a=rtpmap:98 AMR-WB/16000\r\n";

/// Every sample, for the robustness sweeps.
pub(crate) const ALL: [&str; 8] = [
    BARESIP,
    LINPHONE,
    SIPP,
    CARRIER,
    WEBRTCISH,
    GCM_AND_CM,
    AVP_WITH_CRYPTO,
    UNKNOWN_CODECS,
];
