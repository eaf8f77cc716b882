/*
 * slm/protocol.h: the slmd wire protocol, version 1.
 *
 * Clients talk to slmd with UDP datagrams.  Every datagram is one message:
 * a fixed 40-byte header, a body of fields, and, when the datagram is
 * authenticated, a 16-byte MAC.  All integers are little-endian; floats
 * are IEEE-754 binary32 stored as their bit pattern in a little-endian
 * u32.  docs/protocol.md describes the exchanges (fragmentation,
 * retransmission, streaming, authentication); this header is the byte
 * layout.  The codec lives in dataplane/proto.h.
 *
 * Datagram layout:
 *
 *   offset  size  field
 *   0       2     magic     0x4D53: the bytes 'S' 'M'
 *   2       1     version   1
 *   3       1     type      enum slm_proto_type
 *   4       1     flags     SLM_PROTO_F_*; unknown bits are ignored
 *   5       1     reserved  0 when sent, ignored when received
 *   6       2     key_id    key of the MAC; 0 when flags lacks AUTH
 *   8       4     conn_id   client connection: random, never 0, chosen by
 *                           the client when it opens the connection
 *   12      4     req_id    request within the connection, 1 upward;
 *                           0 for PING, PONG, INFO_REQ, INFO and errors
 *                           that concern no request
 *   16      4     seq       meaning by type (table below)
 *   20      4     aux       meaning by type (table below)
 *   24      8     pn        packet number: per connection and direction,
 *                           from 1 upward, never reused (replay window)
 *   32      8     ts_us     sender's wall clock, microseconds since
 *                           1970-01-01 UTC; may be 0 without AUTH
 *   40      ...   body      fields, back to back (below)
 *   end-16  16    mac       only with flags AUTH: keyed BLAKE2b with a
 *                           16-byte output, key = the 32-byte key named by
 *                           key_id, over bytes [0, end-16)
 *
 * seq and aux by type:
 *
 *   type      dir  seq                      aux
 *   PING      c>s  ping number              0
 *   PONG      s>c  the PING's seq           0
 *   INFO_REQ  c>s  0                        0
 *   INFO      s>c  0                        0
 *   REQ       c>s  fragment index           bits 0-15: fragment count
 *                                           bits 16-31: fragment size
 *   REQ_ACK   s>c  fragments received       enum slm_proto_req_state
 *   TOKENS    s>c  stream sequence number   0
 *   DONE      s>c  stream sequence number   0
 *   ERROR     s>c  0                        0
 *   CANCEL    c>s  0                        0
 *   ACK       c>s  next stream sequence     0
 *                  wanted (all before it
 *                  were received)
 *
 * A field:
 *
 *   offset  size  field
 *   0       2     tag     bits 0-14: field type (SLM_PROTO_T_*);
 *                         bit 15: MANDATORY
 *   2       2     length  bytes of value, 0..65534
 *   4       len   value
 *
 * or, for a value of 65535 bytes or more (only inside a reassembled
 * request body: a prompt longer than 64 KiB):
 *
 *   0       2     tag
 *   2       2     0xFFFF
 *   4       4     length  bytes of value, at least 65535
 *   8       len   value
 *
 * Fields follow each other without padding and fill the body exactly.
 * A receiver ignores a field whose type it does not know unless its
 * MANDATORY bit is set: then it refuses the whole message (an ERROR with
 * code SLM_PROTO_EUNSUPPORTED naming the field).  A known field's
 * MANDATORY bit is irrelevant.  A field that is not repeatable appears at
 * most once.  Value formats: u8/u32/u64/i32/f32 as above, "bytes" is raw
 * bytes (text is UTF-8, no terminator, no NUL byte inside), "i32[]" and
 * "u32[]" are back-to-back 4-byte values.
 *
 * A generate request is a list of fields (the request body) carried in
 * one or more REQ datagrams: fragment i holds body bytes
 * [i * size, i * size + length); every fragment but the last holds
 * exactly `size` bytes, the last 1..size.  All fragments of a request
 * carry the same count and size.
 */
#ifndef SLM_PROTOCOL_H
#define SLM_PROTOCOL_H

#include <stdint.h>

#define SLM_PROTO_MAGIC 0x4D53u /* 'S' 'M' as a little-endian u16 */
#define SLM_PROTO_VERSION 1
#define SLM_PROTO_HDR_SIZE 40
#define SLM_PROTO_MAC_SIZE 16
#define SLM_PROTO_KEY_SIZE 32
#define SLM_PROTO_FIELD_HDR 4
#define SLM_PROTO_FIELD_HDR_EXT 8
#define SLM_PROTO_LEN_EXT 0xFFFFu /* length word announcing a u32 length */
#define SLM_PROTO_DEFAULT_PORT 7070

/* The largest datagram a v1 receiver accepts (an Ethernet MTU's UDP
 * payload over IPv4); larger ones are dropped as oversized. */
#define SLM_PROTO_MAX_DGRAM 1472
/* What senders use by default: fits the IPv6 minimum MTU (1280) with the
 * IPv6 and UDP headers. */
#define SLM_PROTO_DEFAULT_DGRAM 1232
/* Fragment sizes a receiver accepts. */
#define SLM_PROTO_MIN_FRAG 256
#define SLM_PROTO_MAX_FRAG (SLM_PROTO_MAX_DGRAM - SLM_PROTO_HDR_SIZE)

/* Fragments in one request (its REQ_ACK bitmap fits one datagram). */
#define SLM_PROTO_MAX_FRAGS 8192

/* Limits of a request body (a server may set smaller ones; INFO says). */
#define SLM_PROTO_MAX_STOP 16	   /* stop strings */
#define SLM_PROTO_MAX_STOP_LEN 256 /* bytes of one stop string */
#define SLM_PROTO_MAX_ROLE_LEN 32  /* bytes of a chat role */
#define SLM_PROTO_MAX_NS_LEN 128   /* bytes of a cache namespace */
#define SLM_PROTO_MAX_MISSING 128  /* stream seqs in one ACK */
#define SLM_PROTO_MAX_ECHO 64	   /* bytes of a PING's ECHO */
/* A connection's request ids must stay within this window of the highest
 * seen: a client keeps fewer requests than this in flight. */
#define SLM_PROTO_REQ_WINDOW 1024
/* A connection's packet numbers within this window of the highest seen
 * are checked for replay; older ones are refused. */
#define SLM_PROTO_PN_WINDOW 1024

enum slm_proto_type {
	SLM_PROTO_PING = 1,	/* c>s: are you there; body: ECHO? */
	SLM_PROTO_PONG = 2,	/* s>c: answer; body: the PING's ECHO */
	SLM_PROTO_INFO_REQ = 3, /* c>s: describe yourself; no body */
	SLM_PROTO_INFO = 4,	/* s>c: SERVER_VERSION, MODEL, limits */
	SLM_PROTO_REQ = 5,	/* c>s: a fragment of a generate request */
	SLM_PROTO_REQ_ACK = 6,	/* s>c: FRAG_BITMAP?, STREAM_NEXT */
	SLM_PROTO_TOKENS = 7,	/* s>c: TOKEN_IDS, TEXT */
	SLM_PROTO_DONE = 8,	/* s>c: FINISH, USAGE, TIMINGS, ERROR_CODE? */
	SLM_PROTO_ERROR = 9,	/* s>c: ERROR_CODE, MESSAGE */
	SLM_PROTO_CANCEL = 10,	/* c>s: stop this request */
	SLM_PROTO_ACK = 11,	/* c>s: stream received up to seq; MISSING? */
	SLM_PROTO_TYPE__MAX = 11,
};

/* Header flags. */
#define SLM_PROTO_F_AUTH 0x01u	  /* a MAC ends the datagram */
#define SLM_PROTO_F_ACK_REQ 0x02u /* REQ, ACK: answer with a REQ_ACK */
#define SLM_PROTO_F_FIN \
	0x04u /* ACK: the client has the whole stream,
				   * DONE included; the server forgets it */

/* REQ_ACK aux: where the request is. */
enum slm_proto_req_state {
	SLM_PROTO_RS_PARTIAL = 0, /* fragments missing: see FRAG_BITMAP */
	SLM_PROTO_RS_RUNNING = 1, /* accepted; STREAM_NEXT packets sent */
	SLM_PROTO_RS_DONE = 2,	  /* finished; DONE is stream STREAM_NEXT-1 */
};

/* DONE FINISH values. */
enum slm_proto_finish {
	SLM_PROTO_FINISH_STOP = 0,     /* end of generation or a stop string */
	SLM_PROTO_FINISH_LENGTH = 1,   /* max tokens or the context is full */
	SLM_PROTO_FINISH_CANCELED = 2, /* CANCEL, or the server cancelled */
	SLM_PROTO_FINISH_DEADLINE = 3, /* DEADLINE_MS passed */
	SLM_PROTO_FINISH_ERROR = 4,    /* see ERROR_CODE and MESSAGE */
	SLM_PROTO_FINISH__MAX = 4,
};

/*
 * Error codes carried by ERROR_CODE (negative, as slmd's own codes).
 */
enum slm_proto_err {
	SLM_PROTO_ENOMEM = -1,	     /* server out of memory */
	SLM_PROTO_EINVAL = -2,	     /* bad parameter: MESSAGE names it */
	SLM_PROTO_EFORMAT = -4,	     /* malformed message */
	SLM_PROTO_EUNSUPPORTED = -5, /* version, type or mandatory field */
	SLM_PROTO_ENOTFOUND = -6,    /* no such request */
	SLM_PROTO_ETIMEDOUT = -11,   /* the request timed out */
	SLM_PROTO_ECANCELED = -12,   /* cancelled */
	SLM_PROTO_EOVERLOAD = -13,   /* too many requests in flight */
	SLM_PROTO_EPROTO = -14,	     /* protocol violation */
	SLM_PROTO_ESTATE = -18,	     /* no model, draining, or forgotten */
	SLM_PROTO_ETOOBIG = -20,     /* request or prompt too large */
};

/*
 * Field types (the tag's low 15 bits).  One registry for every message.
 *
 *   type               value      in        repeat  meaning
 *   request body (REQ):
 *   PROMPT_TEXT   0x01 bytes      REQ       no      prompt text
 *   PROMPT_IDS    0x02 i32[]      REQ       no      prompt token ids
 *   CHAT_MSG      0x03 see below  REQ       yes     one chat message
 *   CHAT_TEMPLATE 0x04 bytes      REQ       no      template name/text
 *   PARSE_SPECIAL 0x05 u8         REQ       no      1: special-token text
 *                                                   in the prompt is
 *                                                   matched
 *   TEMPERATURE   0x10 f32        REQ       no      0 = greedy
 *   TOP_K         0x11 i32        REQ       no      0 = off
 *   TOP_P         0x12 f32        REQ       no      1 = off
 *   MIN_P         0x13 f32        REQ       no      0 = off
 *   REPEAT_PENALTY 0x14 f32       REQ       no      1 = off
 *   REPEAT_LAST_N 0x15 i32        REQ       no      penalty window
 *   FREQ_PENALTY  0x16 f32        REQ       no      0 = off
 *   PRESENCE_PENALTY 0x17 f32     REQ       no      0 = off
 *   SEED          0x18 u64        REQ       no      sampling seed
 *   MAX_TOKENS    0x19 u32        REQ       no      tokens to generate
 *   STOP          0x1A bytes      REQ       yes     a stop string
 *   IGNORE_EOS    0x1B u8         REQ       no      1: go past EOS
 *   CACHE_NS      0x1C bytes      REQ       no      prefix cache namespace
 *   DEADLINE_MS   0x1D u32        REQ       no      ms from arrival
 *   responses:
 *   TOKEN_IDS     0x40 i32[]      TOKENS    no      ids sampled
 *   TEXT          0x41 bytes      TOKENS    no      text now final
 *   FINISH        0x42 u8         DONE      no      enum slm_proto_finish
 *   USAGE         0x43 3 x u32    DONE      no      prompt, cached,
 *                                                   generated tokens
 *   TIMINGS       0x44 4 x u64    DONE      no      queue, prefill, ttft,
 *                                                   total; microseconds
 *   ERROR_CODE    0x45 i32        ERROR,    no      enum slm_proto_err
 *                                 DONE
 *   MESSAGE       0x46 bytes      ERROR,    no      human-readable
 *                                 DONE
 *   STREAM_NEXT   0x47 u32        REQ_ACK   no      next stream seq the
 *                                                   server will send
 *   FRAG_BITMAP   0x48 bytes      REQ_ACK   no      bit i (byte i/8, bit
 *                                                   i%8) = fragment i held
 *   MISSING       0x49 u32[]      ACK       no      stream seqs lacking
 *   ECHO          0x4A bytes      PING,     no      opaque, echoed
 *                                 PONG
 *   info:
 *   SERVER_VERSION 0x60 bytes     INFO      no      "slmd 0.1.0"
 *   MODEL         0x61 bytes      INFO      no      model name; absent:
 *                                                   no model loaded
 *   N_CTX         0x62 u32        INFO      no      context length
 *   N_VOCAB       0x63 u32        INFO      no      vocabulary size
 *   MAX_REQUEST   0x64 u32        INFO      no      request body bytes
 *   MAX_DGRAM     0x65 u32        INFO      no      datagram bytes
 *   MAX_INFLIGHT  0x66 u32        INFO      no      per connection
 *   AUTH          0x67 u8         INFO      no      1: MACs required
 *
 * CHAT_MSG value:
 *
 *   offset  size      field
 *   0       1         role_len (1..SLM_PROTO_MAX_ROLE_LEN)
 *   1       role_len  role ("system", "user", "assistant", ...)
 *   1+rl    ...       content (the rest of the value)
 *
 * A request has exactly one kind of prompt: PROMPT_TEXT, PROMPT_IDS, or
 * one or more CHAT_MSG.  Absent sampling fields take the server's
 * defaults (llama.cpp's).
 */
enum slm_proto_field {
	SLM_PROTO_T_PROMPT_TEXT = 0x01,
	SLM_PROTO_T_PROMPT_IDS = 0x02,
	SLM_PROTO_T_CHAT_MSG = 0x03,
	SLM_PROTO_T_CHAT_TEMPLATE = 0x04,
	SLM_PROTO_T_PARSE_SPECIAL = 0x05,
	SLM_PROTO_T_TEMPERATURE = 0x10,
	SLM_PROTO_T_TOP_K = 0x11,
	SLM_PROTO_T_TOP_P = 0x12,
	SLM_PROTO_T_MIN_P = 0x13,
	SLM_PROTO_T_REPEAT_PENALTY = 0x14,
	SLM_PROTO_T_REPEAT_LAST_N = 0x15,
	SLM_PROTO_T_FREQ_PENALTY = 0x16,
	SLM_PROTO_T_PRESENCE_PENALTY = 0x17,
	SLM_PROTO_T_SEED = 0x18,
	SLM_PROTO_T_MAX_TOKENS = 0x19,
	SLM_PROTO_T_STOP = 0x1A,
	SLM_PROTO_T_IGNORE_EOS = 0x1B,
	SLM_PROTO_T_CACHE_NS = 0x1C,
	SLM_PROTO_T_DEADLINE_MS = 0x1D,

	SLM_PROTO_T_TOKEN_IDS = 0x40,
	SLM_PROTO_T_TEXT = 0x41,
	SLM_PROTO_T_FINISH = 0x42,
	SLM_PROTO_T_USAGE = 0x43,
	SLM_PROTO_T_TIMINGS = 0x44,
	SLM_PROTO_T_ERROR_CODE = 0x45,
	SLM_PROTO_T_MESSAGE = 0x46,
	SLM_PROTO_T_STREAM_NEXT = 0x47,
	SLM_PROTO_T_FRAG_BITMAP = 0x48,
	SLM_PROTO_T_MISSING = 0x49,
	SLM_PROTO_T_ECHO = 0x4A,

	SLM_PROTO_T_SERVER_VERSION = 0x60,
	SLM_PROTO_T_MODEL = 0x61,
	SLM_PROTO_T_N_CTX = 0x62,
	SLM_PROTO_T_N_VOCAB = 0x63,
	SLM_PROTO_T_MAX_REQUEST = 0x64,
	SLM_PROTO_T_MAX_DGRAM = 0x65,
	SLM_PROTO_T_MAX_INFLIGHT = 0x66,
	SLM_PROTO_T_AUTH = 0x67,
};

#define SLM_PROTO_MANDATORY 0x8000u
#define SLM_PROTO_TAG_TYPE(tag) ((tag)&0x7FFFu)

#endif
