/* Unit tests of the wire codec, the windows, URLs, the allowlist and the
 * key file (dataplane/proto.h, peer.h, acl.h, keys.h). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataplane/acl.h"
#include "dataplane/keys.h"
#include "dataplane/peer.h"
#include "dataplane/proto.h"
#include "tests/unit/harness.h"

static void test_header_round_trip(void)
{
	struct dp_hdr h = {.version = 1,
			   .type = SLM_PROTO_TOKENS,
			   .flags = SLM_PROTO_F_ACK_REQ,
			   .key_id = 0,
			   .conn_id = 0xdeadbeef,
			   .req_id = 77,
			   .seq = 0x01020304,
			   .aux = 0xa0b0c0d0,
			   .pn = 0x1122334455667788ull,
			   .ts_us = 1700000000000000ull};
	uint8_t buf[SLM_PROTO_HDR_SIZE];
	dp_hdr_encode(buf, &h);
	/* The documented offsets, byte by byte (little-endian). */
	CU_ASSERT_EQUAL(buf[0], 'S');
	CU_ASSERT_EQUAL(buf[1], 'M');
	CU_ASSERT_EQUAL(buf[2], 1);
	CU_ASSERT_EQUAL(buf[3], SLM_PROTO_TOKENS);
	CU_ASSERT_EQUAL(buf[4], SLM_PROTO_F_ACK_REQ);
	CU_ASSERT_EQUAL(buf[8], 0xef);
	CU_ASSERT_EQUAL(buf[11], 0xde);
	CU_ASSERT_EQUAL(buf[12], 77);
	CU_ASSERT_EQUAL(buf[16], 0x04);
	CU_ASSERT_EQUAL(buf[20], 0xd0);
	CU_ASSERT_EQUAL(buf[24], 0x88);
	CU_ASSERT_EQUAL(buf[31], 0x11);
	struct dp_hdr g;
	CU_ASSERT_EQUAL(dp_hdr_decode(buf, sizeof(buf), &g), 0);
	CU_ASSERT_EQUAL(g.type, h.type);
	CU_ASSERT_EQUAL(g.conn_id, h.conn_id);
	CU_ASSERT_EQUAL(g.req_id, h.req_id);
	CU_ASSERT_EQUAL(g.seq, h.seq);
	CU_ASSERT_EQUAL(g.aux, h.aux);
	CU_ASSERT_EQUAL(g.pn, h.pn);
	CU_ASSERT_EQUAL(g.ts_us, h.ts_us);
	CU_ASSERT_EQUAL(dp_hdr_decode(buf, SLM_PROTO_HDR_SIZE - 1, &g),
			SLM_EFORMAT);
	buf[0] = 'X';
	CU_ASSERT_EQUAL(dp_hdr_decode(buf, sizeof(buf), &g), SLM_EFORMAT);
	buf[0] = 'S';
	buf[2] = 2;
	CU_ASSERT_EQUAL(dp_hdr_decode(buf, sizeof(buf), &g), SLM_EUNSUPPORTED);
	CU_ASSERT_EQUAL(g.version, 2);
}

static void test_fields(void)
{
	uint8_t buf[64];
	struct dp_writer w;
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field_u32(&w, 0x19, 7);
	dp_put_field(&w, 0x41, false, "hi", 2);
	CU_ASSERT_FALSE(w.overflow);
	CU_ASSERT_EQUAL(w.len, 8 + 6);
	CU_ASSERT_EQUAL(dp_get_u16(buf), 0x19 | SLM_PROTO_MANDATORY);
	CU_ASSERT_EQUAL(dp_get_u16(buf + 8), 0x41);
	struct dp_field_iter it;
	struct dp_field f;
	dp_field_iter_init(&it, buf, w.len);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), 1);
	CU_ASSERT_EQUAL(f.type, 0x19);
	CU_ASSERT_TRUE(f.mandatory);
	CU_ASSERT_EQUAL(dp_get_u32(f.val), 7);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), 1);
	CU_ASSERT_FALSE(f.mandatory);
	CU_ASSERT_EQUAL(f.len, 2);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), 0);
	/* Every cut inside a field is refused, never read past. */
	for (size_t cut = 1; cut < w.len; cut++) {
		if (cut == 8)
			continue; /* a field boundary */
		dp_field_iter_init(&it, buf, cut);
		int rc;
		while ((rc = dp_field_next(&it, &f)) > 0)
			;
		CU_ASSERT_EQUAL(rc, SLM_EFORMAT);
	}
	/* The extended length form: a value of 65535 bytes or more. */
	size_t big_len = 70000;
	uint8_t *big = malloc(big_len + 16), *val = malloc(big_len);
	memset(val, 'q', big_len);
	dp_writer_init(&w, big, big_len + 16);
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, val, big_len);
	CU_ASSERT_FALSE(w.overflow);
	CU_ASSERT_EQUAL(w.len, big_len + 8);
	CU_ASSERT_EQUAL(dp_field_size(big_len), big_len + 8);
	CU_ASSERT_EQUAL(dp_get_u16(big + 2), 0xFFFF);
	CU_ASSERT_EQUAL(dp_get_u32(big + 4), big_len);
	dp_field_iter_init(&it, big, w.len);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), 1);
	CU_ASSERT_EQUAL(f.len, big_len);
	CU_ASSERT_EQUAL(f.val, big + 8);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), 0);
	struct dp_gen dg;
	void *arena;
	struct slm_error e = {0};
	CU_ASSERT_EQUAL(dp_gen_decode(big, w.len, &dg, &arena, &e), 0);
	CU_ASSERT_EQUAL(dg.text_len, big_len);
	free(arena);
	/* Truncated inside the extended header or the value. */
	dp_field_iter_init(&it, big, 6);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), SLM_EFORMAT);
	dp_field_iter_init(&it, big, w.len - 1);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), SLM_EFORMAT);
	/* The extended form for a short value is not the shortest form. */
	dp_put_u32(big + 4, 10);
	dp_field_iter_init(&it, big, 18);
	CU_ASSERT_EQUAL(dp_field_next(&it, &f), SLM_EFORMAT);
	free(big);
	free(val);
	/* 65534 is the longest short form, 65535 the shortest long one. */
	CU_ASSERT_EQUAL(dp_field_size(65534), 65538);
	CU_ASSERT_EQUAL(dp_field_size(65535), 65543);

	/* Overflow is remembered. */
	dp_writer_init(&w, buf, 10);
	dp_put_field(&w, 1, true, "0123456789", 10);
	CU_ASSERT_TRUE(w.overflow);
}

static const char *stops[] = {"\n\n", "User:"};
static const struct dp_chat_msg chat[] = {{"system", "be brief"},
					  {"user", "hello there"}};

static struct dp_gen full_text_request(void)
{
	struct dp_gen g = {0};
	g.input = DP_INPUT_TEXT;
	g.text = "Once upon a time";
	g.text_len = (uint32_t)strlen(g.text);
	g.set = DP_GEN_TEMPERATURE | DP_GEN_TOP_K | DP_GEN_TOP_P |
		DP_GEN_MIN_P | DP_GEN_REPEAT_PENALTY | DP_GEN_REPEAT_LAST_N |
		DP_GEN_FREQ_PENALTY | DP_GEN_PRESENCE_PENALTY | DP_GEN_SEED |
		DP_GEN_MAX_TOKENS | DP_GEN_IGNORE_EOS | DP_GEN_PARSE_SPECIAL |
		DP_GEN_DEADLINE;
	g.temperature = 0.7f;
	g.top_k = 40;
	g.top_p = 0.95f;
	g.min_p = 0.05f;
	g.repeat_penalty = 1.1f;
	g.repeat_last_n = 64;
	g.freq_penalty = 0.25f;
	g.presence_penalty = -0.5f;
	g.seed = 0xfedcba9876543210ull;
	g.max_tokens = 33;
	g.ignore_eos = true;
	g.parse_special = true;
	g.deadline_ms = 1500;
	g.stop = stops;
	g.n_stop = 2;
	g.cache_ns = "tenant-a";
	return g;
}

static void test_gen_round_trip(void)
{
	struct dp_gen g = full_text_request();
	uint8_t buf[1024];
	int n = dp_gen_encode(&g, buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL((size_t)n, dp_gen_encoded_size(&g));
	struct dp_gen d;
	void *arena;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_gen_decode(buf, (size_t)n, &d, &arena, &err),
			      0);
	CU_ASSERT_EQUAL(d.input, DP_INPUT_TEXT);
	CU_ASSERT_EQUAL(d.text_len, g.text_len);
	CU_ASSERT_STRING_EQUAL(d.text, g.text);
	CU_ASSERT_EQUAL(d.set, g.set);
	CU_ASSERT_EQUAL(d.temperature, g.temperature);
	CU_ASSERT_EQUAL(d.top_k, 40);
	CU_ASSERT_EQUAL(d.top_p, g.top_p);
	CU_ASSERT_EQUAL(d.min_p, g.min_p);
	CU_ASSERT_EQUAL(d.repeat_penalty, g.repeat_penalty);
	CU_ASSERT_EQUAL(d.repeat_last_n, 64);
	CU_ASSERT_EQUAL(d.freq_penalty, g.freq_penalty);
	CU_ASSERT_EQUAL(d.presence_penalty, g.presence_penalty);
	CU_ASSERT_EQUAL(d.seed, g.seed);
	CU_ASSERT_EQUAL(d.max_tokens, 33);
	CU_ASSERT_TRUE(d.ignore_eos);
	CU_ASSERT_TRUE(d.parse_special);
	CU_ASSERT_EQUAL(d.deadline_ms, 1500);
	CU_ASSERT_EQUAL_FATAL(d.n_stop, 2);
	CU_ASSERT_STRING_EQUAL(d.stop[0], "\n\n");
	CU_ASSERT_STRING_EQUAL(d.stop[1], "User:");
	CU_ASSERT_STRING_EQUAL(d.cache_ns, "tenant-a");
	free(arena);

	/* Token ids and chat messages. */
	int32_t ids[] = {1, 15043, 2, 0x7fffffff, 0};
	struct dp_gen gi = {.input = DP_INPUT_IDS, .ids = ids, .n_ids = 5};
	n = dp_gen_encode(&gi, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(dp_gen_decode(buf, (size_t)n, &d, &arena, &err),
			      0);
	CU_ASSERT_EQUAL(d.input, DP_INPUT_IDS);
	CU_ASSERT_EQUAL_FATAL(d.n_ids, 5);
	CU_ASSERT_EQUAL(memcmp(d.ids, ids, sizeof(ids)), 0);
	CU_ASSERT_EQUAL(d.set, 0);
	CU_ASSERT_PTR_NULL(d.cache_ns);
	free(arena);

	struct dp_gen gc = {.input = DP_INPUT_CHAT,
			    .msgs = chat,
			    .n_msgs = 2,
			    .chat_template = "chatml"};
	n = dp_gen_encode(&gc, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(dp_gen_decode(buf, (size_t)n, &d, &arena, &err),
			      0);
	CU_ASSERT_EQUAL(d.input, DP_INPUT_CHAT);
	CU_ASSERT_EQUAL_FATAL(d.n_msgs, 2);
	CU_ASSERT_STRING_EQUAL(d.msgs[0].role, "system");
	CU_ASSERT_STRING_EQUAL(d.msgs[1].content, "hello there");
	CU_ASSERT_STRING_EQUAL(d.chat_template, "chatml");
	free(arena);

	/* A buffer one byte short is refused, not overrun. */
	n = (int)dp_gen_encoded_size(&g);
	CU_ASSERT_EQUAL(dp_gen_encode(&g, buf, (size_t)n - 1), SLM_ETOOBIG);
	struct dp_gen empty = {.input = DP_INPUT_TEXT, .text = ""};
	CU_ASSERT_EQUAL(dp_gen_encode(&empty, buf, sizeof(buf)), SLM_EINVAL);
}

/* Decode a body made of raw fields; returns the code, checks no leak. */
static int decode_fields(const uint8_t *body, size_t len, char *msg)
{
	struct dp_gen d;
	void *arena = NULL;
	struct slm_error err = {0};
	int rc = dp_gen_decode(body, len, &d, &arena, &err);
	if (rc)
		CU_ASSERT_PTR_NULL(arena);
	free(arena);
	if (msg)
		snprintf(msg, 256, "%s", err.msg);
	return rc;
}

static void test_gen_refusals(void)
{
	uint8_t buf[2048];
	struct dp_writer w;
	char msg[256];

	/* Unknown optional field: ignored.  Unknown mandatory: refused,
	 * naming the field. */
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "hi", 2);
	dp_put_field(&w, 0x3333, false, "future", 6);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), 0);
	dp_put_field(&w, 0x3334, true, "must", 4);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, msg), SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "0x3334"));

	/* No prompt; two kinds of prompt; an empty prompt. */
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_TOKENS, 3);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	int32_t one = 1;
	dp_put_field_i32s(&w, SLM_PROTO_T_PROMPT_IDS, &one, 1);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "", 0);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);

	/* Repeated non-repeatable field; wrong fixed length. */
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_TOKENS, 3);
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_TOKENS, 4);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EFORMAT);
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	dp_put_field(&w, SLM_PROTO_T_SEED, true, "1234", 4);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EFORMAT);
	/* PROMPT_IDS not a multiple of 4 */
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_IDS, true, "12345", 5);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EFORMAT);

	/* NaN temperature, NUL in a stop string, too many stops, long
	 * namespace, bad chat role length. */
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	dp_put_field_f32(&w, SLM_PROTO_T_TEMPERATURE, NAN);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, msg), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "TEMPERATURE"));
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	dp_put_field(&w, SLM_PROTO_T_STOP, true, "a\0b", 3);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	for (int i = 0; i <= SLM_PROTO_MAX_STOP; i++)
		dp_put_field(&w, SLM_PROTO_T_STOP, true, "x", 1);
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);
	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "a", 1);
	char ns[SLM_PROTO_MAX_NS_LEN + 1];
	memset(ns, 'n', sizeof(ns));
	dp_put_field(&w, SLM_PROTO_T_CACHE_NS, true, ns, sizeof(ns));
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EINVAL);
	dp_writer_init(&w, buf, sizeof(buf));
	uint8_t bad_chat[] = {9, 'u', 's', 'e', 'r'}; /* role_len past end */
	dp_put_field(&w, SLM_PROTO_T_CHAT_MSG, true, bad_chat,
		     sizeof(bad_chat));
	CU_ASSERT_EQUAL(decode_fields(buf, w.len, NULL), SLM_EFORMAT);

	/* Every truncation of a valid request is refused or decodes. */
	struct dp_gen g = full_text_request();
	int n = dp_gen_encode(&g, buf, sizeof(buf));
	for (int cut = 0; cut < n; cut++) {
		int rc = decode_fields(buf, (size_t)cut, NULL);
		CU_ASSERT(rc == 0 || rc == SLM_EFORMAT || rc == SLM_EINVAL);
	}
}

static void test_responses(void)
{
	uint8_t buf[512];
	struct dp_writer w;
	struct slm_error err = {0};

	dp_writer_init(&w, buf, sizeof(buf));
	int32_t ids[] = {5, -1, 300000};
	dp_put_field_i32s(&w, SLM_PROTO_T_TOKEN_IDS, ids, 3);
	dp_put_field(&w, SLM_PROTO_T_TEXT, true, "abc", 3);
	struct dp_tokens t;
	CU_ASSERT_EQUAL(dp_tokens_decode(buf, w.len, &t, &err), 0);
	CU_ASSERT_EQUAL(t.n_ids, 3);
	CU_ASSERT_EQUAL((int32_t)dp_get_u32(t.ids_raw + 4), -1);
	CU_ASSERT_EQUAL(t.text_len, 3);

	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field_u8(&w, SLM_PROTO_T_FINISH, SLM_PROTO_FINISH_LENGTH);
	uint8_t usage[12], tim[32];
	for (int i = 0; i < 3; i++)
		dp_put_u32(usage + 4 * i, (uint32_t)(10 + i));
	for (int i = 0; i < 4; i++)
		dp_put_u64(tim + 8 * i, (uint64_t)(100 + i));
	dp_put_field(&w, SLM_PROTO_T_USAGE, true, usage, 12);
	dp_put_field(&w, SLM_PROTO_T_TIMINGS, true, tim, 32);
	struct dp_done d;
	CU_ASSERT_EQUAL(dp_done_decode(buf, w.len, &d, &err), 0);
	CU_ASSERT_EQUAL(d.finish, SLM_PROTO_FINISH_LENGTH);
	CU_ASSERT_EQUAL(d.cached_tokens, 11);
	CU_ASSERT_EQUAL(d.total_us, 103);
	/* FINISH is required; an unknown value is refused. */
	CU_ASSERT_EQUAL(dp_done_decode(buf + 5, w.len - 5, &d, &err),
			SLM_EFORMAT);
	buf[4] = 9;
	CU_ASSERT_EQUAL(dp_done_decode(buf, w.len, &d, &err), SLM_EFORMAT);

	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field_i32(&w, SLM_PROTO_T_ERROR_CODE, SLM_EOVERLOAD);
	dp_put_field(&w, SLM_PROTO_T_MESSAGE, true, "busy", 4);
	struct dp_errmsg e;
	CU_ASSERT_EQUAL(dp_errmsg_decode(buf, w.len, &e, &err), 0);
	CU_ASSERT_EQUAL(e.code, SLM_EOVERLOAD);
	CU_ASSERT_EQUAL(e.msg_len, 4);

	dp_writer_init(&w, buf, sizeof(buf));
	uint8_t missing[8];
	dp_put_u32(missing, 3);
	dp_put_u32(missing + 4, 9);
	dp_put_field(&w, SLM_PROTO_T_MISSING, true, missing, 8);
	struct dp_ack a;
	CU_ASSERT_EQUAL(dp_ack_decode(buf, w.len, &a, &err), 0);
	CU_ASSERT_EQUAL(a.n_missing, 2);
	CU_ASSERT_EQUAL(dp_get_u32(a.missing_raw + 4), 9);

	dp_writer_init(&w, buf, sizeof(buf));
	dp_put_field(&w, SLM_PROTO_T_SERVER_VERSION, false, "slmd 9", 6);
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_REQUEST, 65536);
	dp_put_field_u8(&w, SLM_PROTO_T_AUTH, 1);
	dp_put_field(&w, 0x7000, false, "later", 5);
	struct dp_info in;
	CU_ASSERT_EQUAL(dp_info_decode(buf, w.len, &in, &err), 0);
	CU_ASSERT_EQUAL(in.max_request, 65536);
	CU_ASSERT_TRUE(in.auth);
	CU_ASSERT_PTR_NULL(in.model);

	CU_ASSERT_STRING_EQUAL(dp_type_name(SLM_PROTO_REQ_ACK), "REQ_ACK");
	CU_ASSERT_STRING_EQUAL(dp_finish_name(SLM_PROTO_FINISH_CANCELED),
			       "canceled");
}

static void test_mac(void)
{
	uint8_t key[32], other[32];
	for (int i = 0; i < 32; i++) {
		key[i] = (uint8_t)i;
		other[i] = (uint8_t)(i + 1);
	}
	uint8_t buf[SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE];
	struct dp_hdr h = {
		.version = 1, .type = SLM_PROTO_PING, .conn_id = 5, .pn = 1};
	dp_hdr_encode(buf, &h);
	memcpy(buf + SLM_PROTO_HDR_SIZE, "payload", 7);
	size_t len = dp_seal(buf, SLM_PROTO_HDR_SIZE + 7, sizeof(buf), 42, key);
	CU_ASSERT_EQUAL_FATAL(len, SLM_PROTO_HDR_SIZE + 7 + SLM_PROTO_MAC_SIZE);
	CU_ASSERT_TRUE(buf[4] & SLM_PROTO_F_AUTH);
	CU_ASSERT_EQUAL(dp_get_u16(buf + 6), 42);
	CU_ASSERT_TRUE(dp_mac_verify(buf, len, key));
	CU_ASSERT_FALSE(dp_mac_verify(buf, len, other));
	/* Any bit flipped anywhere (header, payload, MAC) is caught. */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x10;
		CU_ASSERT_FALSE(dp_mac_verify(buf, len, key));
		buf[i] ^= 0x10;
	}
	CU_ASSERT_FALSE(dp_mac_verify(buf, len - 1, key));
	const uint8_t *body;
	size_t blen;
	struct dp_hdr g;
	CU_ASSERT_EQUAL(dp_hdr_decode(buf, len, &g), 0);
	CU_ASSERT_TRUE(dp_dgram_body(buf, len, &g, &body, &blen));
	CU_ASSERT_EQUAL(blen, 7);
	/* No room for the MAC. */
	CU_ASSERT_EQUAL(dp_seal(buf, 50, 60, 1, key), 0);
}

static void test_window(void)
{
	struct dp_window w = {0};
	CU_ASSERT_EQUAL(dp_window_test(&w, 0), DP_WINDOW_TOO_OLD);
	CU_ASSERT_EQUAL(dp_window_test(&w, 1), DP_WINDOW_NEW);
	dp_window_set(&w, 1);
	CU_ASSERT_EQUAL(dp_window_test(&w, 1), DP_WINDOW_SEEN);
	dp_window_set(&w, 5000);
	CU_ASSERT_EQUAL(dp_window_test(&w, 1), DP_WINDOW_TOO_OLD);
	CU_ASSERT_EQUAL(dp_window_test(&w, 5000 - DP_WINDOW + 1),
			DP_WINDOW_NEW);
	CU_ASSERT_EQUAL(dp_window_test(&w, 5000 - DP_WINDOW),
			DP_WINDOW_TOO_OLD);

	/* Against a reference: every value ever set, random order with
	 * jumps. */
	struct slm_test_rng rng = {99};
	enum { MAXV = 20000 };
	uint8_t *seen = calloc(MAXV + DP_WINDOW * 4, 1);
	struct dp_window x = {0};
	uint64_t top = 0;
	for (int i = 0; i < 200000; i++) {
		uint64_t r = slm_test_rand(&rng);
		uint64_t v;
		if (r % 10 == 0)
			v = top + 1 + (r >> 8) % (DP_WINDOW * 2);
		else
			v = top > 1500 ? top - 1500 + (r >> 8) % 1600
				       : 1 + (r >> 8) % 1600;
		if (v == 0 || v >= MAXV)
			continue;
		enum dp_window_state want;
		if (top >= DP_WINDOW && v <= top - DP_WINDOW)
			want = DP_WINDOW_TOO_OLD;
		else
			want = seen[v] ? DP_WINDOW_SEEN : DP_WINDOW_NEW;
		enum dp_window_state got = dp_window_test(&x, v);
		CU_ASSERT_EQUAL(got, want);
		if (got != want)
			break;
		if (got == DP_WINDOW_NEW) {
			dp_window_set(&x, v);
			seen[v] = 1;
			if (v > top)
				top = v;
		}
	}
	free(seen);
}

static void test_url(void)
{
	struct dp_url u;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_url_parse("udp://127.0.0.1:7070", &u, &err), 0);
	CU_ASSERT_STRING_EQUAL(u.scheme, "udp");
	CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
	CU_ASSERT_EQUAL(u.port, 7070);
	CU_ASSERT_EQUAL(dp_url_parse("udp://[::1]:9", &u, &err), 0);
	CU_ASSERT_STRING_EQUAL(u.host, "::1");
	CU_ASSERT_EQUAL(u.port, 9);
	CU_ASSERT_EQUAL(dp_url_parse("udp://example.org", &u, &err), 0);
	CU_ASSERT_EQUAL(u.port, SLM_PROTO_DEFAULT_PORT);
	CU_ASSERT_EQUAL(dp_url_parse("memif:///run/x.sock", &u, &err),
			SLM_EINVAL); /* no host: not a udp URL */
	static const char *bad[] = {"127.0.0.1:7070", "udp://",
				    "udp://[::1",     "udp://h:99999",
				    "udp://h:7x",     "://h:1"};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bad); i++) {
		struct slm_error e = {0};
		CU_ASSERT_EQUAL(dp_url_parse(bad[i], &u, &e), SLM_EINVAL);
		CU_ASSERT(strlen(e.msg) > 0);
	}
}

static struct dp_peer peer4(const char *a, uint16_t port)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(port)};
	inet_pton(AF_INET, a, &in.sin_addr);
	struct dp_peer p;
	CU_ASSERT_EQUAL(dp_peer_from_sockaddr(&p, (void *)&in, sizeof(in)), 0);
	return p;
}

static struct dp_peer peer6(const char *a, uint16_t port)
{
	struct sockaddr_in6 in = {.sin6_family = AF_INET6,
				  .sin6_port = htons(port)};
	inet_pton(AF_INET6, a, &in.sin6_addr);
	struct dp_peer p;
	CU_ASSERT_EQUAL(dp_peer_from_sockaddr(&p, (void *)&in, sizeof(in)), 0);
	return p;
}

static void test_peer_and_acl(void)
{
	struct dp_peer a = peer4("10.1.2.3", 5);
	struct dp_peer m = peer6("::ffff:10.1.2.3", 5);
	CU_ASSERT_EQUAL(m.family, AF_INET); /* mapped = IPv4 */
	CU_ASSERT_TRUE(dp_peer_equal(&a, &m));
	CU_ASSERT_EQUAL(dp_peer_hash(&a, 1), dp_peer_hash(&m, 1));
	char s[64];
	dp_peer_format(&a, s, sizeof(s));
	CU_ASSERT_STRING_EQUAL(s, "10.1.2.3:5");
	struct dp_peer v6 = peer6("2001:db8::7", 443);
	dp_peer_format(&v6, s, sizeof(s));
	CU_ASSERT_STRING_EQUAL(s, "[2001:db8::7]:443");
	struct sockaddr_storage ss;
	CU_ASSERT_EQUAL(dp_peer_to_sockaddr(&a, &ss, AF_INET6),
			sizeof(struct sockaddr_in6));
	struct dp_peer back;
	CU_ASSERT_EQUAL(dp_peer_from_sockaddr(&back, (void *)&ss,
					      sizeof(struct sockaddr_in6)),
			0);
	CU_ASSERT_TRUE(dp_peer_equal(&a, &back));

	struct dp_acl *acl = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_acl_parse("  ", &acl, &err), 0);
	CU_ASSERT_PTR_NULL(acl);
	CU_ASSERT_TRUE(dp_acl_allows(NULL, &a));
	CU_ASSERT_EQUAL_FATAL(
		dp_acl_parse("10.1.0.0/16, 192.168.7.9 "
			     "2001:db8::/33,::ffff:172.16.0.0/108",
			     &acl, &err),
		0);
	CU_ASSERT_EQUAL(dp_acl_count(acl), 4);
	CU_ASSERT_TRUE(dp_acl_allows(acl, &a));
	CU_ASSERT_TRUE(dp_acl_allows(acl, &m));
	struct dp_peer x = peer4("10.2.0.1", 1);
	CU_ASSERT_FALSE(dp_acl_allows(acl, &x));
	x = peer4("192.168.7.9", 1);
	CU_ASSERT_TRUE(dp_acl_allows(acl, &x));
	x = peer4("192.168.7.8", 1);
	CU_ASSERT_FALSE(dp_acl_allows(acl, &x));
	CU_ASSERT_TRUE(dp_acl_allows(acl, &v6));
	x = peer6("2001:db8:8000::1", 1); /* outside /33 */
	CU_ASSERT_FALSE(dp_acl_allows(acl, &x));
	x = peer4("172.16.200.1", 1); /* the mapped /108 is 172.16/12 */
	CU_ASSERT_TRUE(dp_acl_allows(acl, &x));
	dp_acl_destroy(acl);
	static const char *bad[] = {"10.0.0.0/33", "::/129", "10.0.0/8",
				    "host.example", "1.2.3.4/"};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bad); i++) {
		struct slm_error e = {0};
		CU_ASSERT_EQUAL(dp_acl_parse(bad[i], &acl, &e), SLM_ECONFIG);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "dataplane.allow"));
	}
}

static const char *write_file(const char *name, const char *text, int mode)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", slm_test_tmpdir(), name);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
	chmod(path, (mode_t)mode);
	return path;
}

static void test_keys(void)
{
	const char *hex1 = "000102030405060708090a0b0c0d0e0f"
			   "101112131415161718191a1b1c1d1e1f";
	char text[512];
	snprintf(text, sizeof(text), "# slmd keys\n\n7 %s\n  3\t%s  \n", hex1,
		 hex1);
	text[strlen(text) - 3] = '\n'; /* trailing blanks then newline */
	const char *p = write_file("keys", text, 0600);
	struct dp_keys *k = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_keys_load(p, true, &k, &err), 0);
	CU_ASSERT_EQUAL(dp_keys_count(k), 2);
	CU_ASSERT_EQUAL(dp_keys_id_at(k, 0), 3);
	const uint8_t *key = dp_keys_find(k, 7);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	CU_ASSERT_EQUAL(key[31], 0x1f);
	CU_ASSERT_PTR_NULL(dp_keys_find(k, 8));
	dp_keys_destroy(k);

	/* Readable by others: refused by the server, read by a client. */
	p = write_file("keys-open", text, 0644);
	struct slm_error e1 = {0};
	CU_ASSERT_EQUAL(dp_keys_load(p, true, &k, &e1), SLM_EAUTH);
	CU_ASSERT_PTR_NOT_NULL(strstr(e1.msg, "0644"));
	CU_ASSERT_EQUAL(dp_keys_load(p, false, &k, &err), 0);
	dp_keys_destroy(k);
	p = write_file("keys-group", text, 0640);
	CU_ASSERT_EQUAL(dp_keys_load(p, true, &k, &err), SLM_EAUTH);

	static const char *bad[] = {
		"1 0011\n",	      /* short */
		"0 %s\n",	      /* id 0 */
		"70000 %s\n",	      /* id too big */
		"1 %s extra\n",	      /* trailing word */
		"1 %s\n1 %s\n",	      /* repeated */
		"# only a comment\n", /* empty */
		"x %s\n",	      /* not a number */
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bad); i++) {
		char t[512];
		snprintf(t, sizeof(t), bad[i], hex1, hex1);
		p = write_file("keys-bad", t, 0600);
		struct slm_error e = {0};
		int rc = dp_keys_load(p, true, &k, &e);
		CU_ASSERT(rc == SLM_EFORMAT || rc == SLM_EINVAL);
		CU_ASSERT_PTR_NULL(k);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "keys-bad"));
	}
	struct slm_error e2 = {0};
	CU_ASSERT_EQUAL(dp_keys_load("/nonexistent/keys", true, &k, &e2),
			SLM_EIO);
}

SLM_SUITE("proto", NULL, NULL, {"header round trip", test_header_round_trip},
	  {"fields", test_fields}, {"generate round trip", test_gen_round_trip},
	  {"generate refusals", test_gen_refusals},
	  {"responses", test_responses}, {"mac", test_mac},
	  {"window", test_window}, {"url", test_url},
	  {"peer and allowlist", test_peer_and_acl}, {"key file", test_keys})
