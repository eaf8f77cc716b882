/*
 * test_chat.c: chat templates against the golden chat prompts (the text
 * llama.cpp formatted and the ids it tokenized), the formats of every
 * supported family, detection by marker and the errors.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/chat.h"
#include "engine/tokenizer.h"
#include "tests/unit/harness.h"

#define FAILF(...)                                  \
	do {                                        \
		printf("\n    FAIL: " __VA_ARGS__); \
		printf("\n");                       \
		CU_FAIL("see the message above");   \
	} while (0)

static struct slm_vocab *open_vocab(const char *path)
{
	struct slm_vocab *v = NULL;
	struct slm_error err = {0};
	if (access(path, R_OK) != 0)
		FAILF("missing test input %s (run `make testdata`; golden "
		      "model "
		      "files go to build/testdata/models/)",
		      path);
	else if (slm_vocab_load_file(path, &v, &err))
		FAILF("%s", err.msg);
	return v;
}

/*
 * The golden greedy runs that used a chat template: the model's own
 * tokenizer.chat_template is detected as llama.cpp detected it, the one
 * user message formats to exactly llama.cpp's prompt text, and that text
 * tokenizes (add_special, parse_special) to llama.cpp's prompt ids.
 */
static void test_golden_chat_prompts(void)
{
	size_t size;
	char *buf =
		slm_test_read_file(slm_test_data("golden/greedy.jsonl"), &size);
	if (!buf) {
		FAILF("missing golden file golden/greedy.jsonl");
		return;
	}
	int n_chat = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *o = cJSON_Parse(line);
		if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "chat"))) {
			cJSON_Delete(o);
			continue;
		}
		n_chat++;
		const char *model =
			cJSON_GetObjectItem(o, "model")->valuestring;
		const char *prompt =
			cJSON_GetObjectItem(o, "prompt")->valuestring;
		const char *want =
			cJSON_GetObjectItem(o, "prompt_text")->valuestring;
		struct slm_vocab *v = open_vocab(slm_test_generated(model));
		if (!v) {
			cJSON_Delete(o);
			break;
		}
		const char *expect_name = !strncmp(model, "models/llama3-s", 15)
						  ? "llama3"
						  : "chatml";
		const char *tmpl = slm_vocab_chat_template(v);
		CU_ASSERT_PTR_NOT_NULL(tmpl);
		const char *name = slm_chat_detect(tmpl);
		if (!name || strcmp(name, expect_name))
			FAILF("%s: template detected as %s, llama.cpp used %s",
			      model, name ? name : "(none)", expect_name);
		struct slm_error err = {0};
		const char *resolved;
		CU_ASSERT_EQUAL(slm_chat_resolve(NULL, tmpl, &resolved, &err),
				0);
		struct slm_chat_msg msg = {"user", prompt};
		struct slm_text text = {0};
		CU_ASSERT_EQUAL_FATAL(
			slm_chat_apply(resolved, &msg, 1, true, &text, &err),
			0);
		if (strcmp(text.data, want))
			FAILF("%s: chat prompt '%s', llama.cpp '%s'", model,
			      text.data, want);
		struct slm_tokens ids = {0};
		CU_ASSERT_EQUAL(slm_tokenize(v, text.data, text.len,
					     SLM_TOK_ADD_SPECIAL |
						     SLM_TOK_PARSE_SPECIAL,
					     &ids, &err),
				0);
		const cJSON *want_ids = cJSON_GetObjectItem(o, "prompt_ids");
		bool same = (size_t)cJSON_GetArraySize(want_ids) == ids.n;
		for (size_t i = 0; same && i < ids.n; i++)
			same = cJSON_GetArrayItem(want_ids, (int)i)->valueint ==
			       ids.ids[i];
		if (!same)
			FAILF("%s: chat prompt ids differ from llama.cpp's",
			      model);
		slm_tokens_free(&ids);
		slm_text_free(&text);
		slm_vocab_destroy(v);
		cJSON_Delete(o);
	}
	free(buf);
	/* llama3-s and qwen2-s in 6 types each, one chat prompt per file */
	CU_ASSERT_EQUAL(n_chat, 12);
}

/* The full vocabularies' templates: Llama-3 instruct and Qwen3. */
static void test_full_vocab_templates(void)
{
	struct slm_vocab *l3 =
		open_vocab(slm_test_generated("vocab/vocab-llama3-bpe.gguf"));
	struct slm_vocab *qw =
		open_vocab(slm_test_generated("vocab/vocab-qwen2-bpe.gguf"));
	if (l3) {
		const char *n = slm_chat_detect(slm_vocab_chat_template(l3));
		CU_ASSERT(n && !strcmp(n, "llama3"));
	}
	if (qw) {
		const char *n = slm_chat_detect(slm_vocab_chat_template(qw));
		CU_ASSERT(n && !strcmp(n, "chatml"));
	}
	slm_vocab_destroy(l3);
	slm_vocab_destroy(qw);
}

/* llama.cpp's conversation for its template tests. */
static const struct slm_chat_msg conv[] = {
	{"system", "You are a helpful assistant"},
	{"user", "Hello"},
	{"assistant", "Hi there"},
	{"user", "Who are you"},
	{"assistant", "   I am an assistant   "},
	{"user", "Another question"},
};

static const struct {
	const char *name;
	const char *want; /* with the generation prompt */
} formats[] = {
	{"chatml",
	 "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
	 "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi "
	 "there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
	 "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
	 "<|im_start|>user\nAnother question<|im_end|>\n"
	 "<|im_start|>assistant\n"},
	{"llama2",
	 "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
	 "[INST] Who are you [/INST]   I am an assistant   </s>[INST] "
	 "Another question [/INST]"},
	{"llama2-sys",
	 "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello "
	 "[/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant "
	 "  </s>[INST] Another question [/INST]"},
	{"llama2-sys-bos",
	 "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello "
	 "[/INST]Hi there</s><s>[INST] Who are you [/INST]   I am an "
	 "assistant   </s><s>[INST] Another question [/INST]"},
	{"llama2-sys-strip",
	 "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello "
	 "[/INST]Hi there</s>[INST] Who are you [/INST]I am an "
	 "assistant</s>[INST] Another question [/INST]"},
	{"mistral-v1",
	 " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s>"
	 " [INST] Who are you [/INST]    I am an assistant   </s> [INST] "
	 "Another question [/INST]"},
	{"mistral-v3",
	 "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>"
	 "[INST] Who are you[/INST] I am an assistant</s>[INST] Another "
	 "question[/INST]"},
	{"mistral-v3-tekken",
	 "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>"
	 "[INST]Who are you[/INST]   I am an assistant   </s>[INST]Another "
	 "question[/INST]"},
	{"mistral-v7",
	 "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] "
	 "Hello[/INST] Hi there</s>[INST] Who are you[/INST]    I am an "
	 "assistant   </s>[INST] Another question[/INST]"},
	{"mistral-v7-tekken",
	 "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]"
	 "Hello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
	 "assistant   </s>[INST]Another question[/INST]"},
	{"phi3",
	 "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello"
	 "<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you"
	 "<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\n"
	 "Another question<|end|>\n<|assistant|>\n"},
	{"phi4",
	 "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|>"
	 "<|im_start|>user<|im_sep|>Hello<|im_end|><|im_start|>assistant"
	 "<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you"
	 "<|im_end|><|im_start|>assistant<|im_sep|>   I am an assistant   "
	 "<|im_end|><|im_start|>user<|im_sep|>Another question<|im_end|>"
	 "<|im_start|>assistant<|im_sep|>"},
	{"falcon3",
	 "<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n"
	 "<|assistant|>\nHi there\n<|user|>\nWho are you\n<|assistant|>\n"
	 "   I am an assistant   \n<|user|>\nAnother question\n"
	 "<|assistant|>\n"},
	{"zephyr",
	 "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\n"
	 "Hello<|endoftext|>\n<|assistant|>\nHi there<|endoftext|>\n"
	 "<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an "
	 "assistant   <|endoftext|>\n<|user|>\nAnother question<|endoftext|>"
	 "\n<|assistant|>\n"},
	{"gemma",
	 "<start_of_turn>user\nYou are a helpful assistant\n\nHello"
	 "<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
	 "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model"
	 "\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother "
	 "question<end_of_turn>\n<start_of_turn>model\n"},
	{"llama3",
	 "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
	 "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
	 "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi "
	 "there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are "
	 "you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am "
	 "an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
	 "Another question<|eot_id|><|start_header_id|>assistant"
	 "<|end_header_id|>\n\n"},
	{"glmedge",
	 "<|system|>\nYou are a helpful assistant<|user|>\nHello<|assistant|>"
	 "\nHi there<|user|>\nWho are you<|assistant|>\n   I am an assistant"
	 "   <|user|>\nAnother question<|assistant|>"},
	{"smolvlm",
	 "<|im_start|>You are a helpful assistant\n\nUser: Hello"
	 "<end_of_utterance>\nAssistant: Hi there<end_of_utterance>\nUser: "
	 "Who are you<end_of_utterance>\nAssistant:    I am an assistant   "
	 "<end_of_utterance>\nUser: Another question<end_of_utterance>\n"
	 "Assistant:"},
};

/* Every supported template formats llama.cpp's conversation as llama.cpp's
 * built-in formatter does. */
static void test_formats(void)
{
	CU_ASSERT_EQUAL(SLM_ARRAY_LEN(formats), 18);
	for (size_t f = 0; f < SLM_ARRAY_LEN(formats); f++) {
		CU_ASSERT(slm_chat_supported(formats[f].name));
		CU_ASSERT_PTR_NOT_NULL(
			strstr(slm_chat_names(), formats[f].name));
		struct slm_text t = {0};
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(slm_chat_apply(formats[f].name, conv,
						     SLM_ARRAY_LEN(conv), true,
						     &t, &err),
				      0);
		if (strcmp(t.data, formats[f].want))
			FAILF("%s:\n got  '%s'\n want '%s'", formats[f].name,
			      t.data, formats[f].want);
		/* a name is also a template text that selects itself */
		const char *d = slm_chat_detect(formats[f].name);
		CU_ASSERT(d && !strcmp(d, formats[f].name));
		slm_text_free(&t);
	}
	/* without the generation prompt, chatml ends with the last turn */
	struct slm_text t = {0};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_chat_apply("chatml", conv, 2, false, &t, &err), 0);
	CU_ASSERT_STRING_EQUAL(
		t.data, "<|im_start|>system\nYou are a helpful assistant"
			"<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n");
	slm_text_free(&t);
	/* no messages: just the generation prompt */
	CU_ASSERT_EQUAL(slm_chat_apply("llama3", NULL, 0, true, &t, &err), 0);
	CU_ASSERT_STRING_EQUAL(
		t.data, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	slm_text_free(&t);
}

/* Detection by the markers llama.cpp looks for, in its order. */
static void test_detect(void)
{
	static const struct {
		const char *tmpl;
		const char *name; /* NULL: not supported */
	} cases[] = {
		/* Qwen2.5 / SmolLM2 style */
		{"{% for message in messages %}{{'<|im_start|>' + "
		 "message['role'] + '\\n' + message['content'] + '<|im_end|>' "
		 "+ "
		 "'\\n'}}{% endfor %}",
		 "chatml"},
		{"{{'<|im_start|>' + message['role'] + '<|im_sep|>'}}", "phi4"},
		{"<|im_start|>{% if %}User:<end_of_utterance>", "smolvlm"},
		{"{{ bos_token }}{% for message in messages %}{% if "
		 "message['role'] == 'user' %}{{ '[INST] ' + "
		 "message['content'] "
		 "+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
		 "message['content'] + eos_token}}{% endif %}{% endfor %}",
		 "llama2"},
		{"[INST] <<SYS>>\\n' + system_message", "llama2-sys"},
		{"{{ bos_token + '[INST] ' + <<SYS>> }}", "llama2-sys-bos"},
		{"[INST] <<SYS>> message['content'].strip() content.strip()",
		 "llama2-sys-strip"},
		{"{{ bos_token }}{{' [INST] ' + system_message}}",
		 "mistral-v1"},
		{"[AVAILABLE_TOOLS] [INST]", "mistral-v1"},
		{"[AVAILABLE_TOOLS]{{ \"[INST]\" }}", "mistral-v3-tekken"},
		{"[AVAILABLE_TOOLS]{{'[INST]'}}", "mistral-v3"},
		{"[SYSTEM_PROMPT]{{ '[INST]' }}", "mistral-v7"},
		{"mistral-anything", "llama2"},
		{"{{'<|' + message['role'] + '|>\\n' + message['content'] + "
		 "'<|end|>\\n'}}<|assistant|>",
		 "phi3"},
		{"<|user|>\\n ... <|assistant|>\\n ... </s>", "falcon3"},
		{"<|user|>\\n ... <|assistant|>\\n ... eos_token", "glmedge"},
		{"<|user|>{{ message['content'] }}<|endoftext|>", "zephyr"},
		{"{{ '<start_of_turn>' + role + '\\n' }}", "gemma"},
		{"{{'<|start_header_id|>' + message['role'] + "
		 "'<|end_header_id|>\\n\\n'+ message['content'] | trim + "
		 "'<|eot_id|>' }}",
		 "llama3"},
		/* families llama.cpp knows but that are not supported here:
		 * not taken for a later supported one */
		{"USER: {{ }} ASSISTANT: <|start_header_id|><|end_header_id|>",
		 NULL},
		{"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", NULL},
		{"[gMASK]<sop><|user|><|assistant|>", NULL},
		{"{{ message['content'] }}", NULL},
		{"", NULL},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(cases); i++) {
		const char *got = slm_chat_detect(cases[i].tmpl);
		bool ok = cases[i].name ? got && !strcmp(got, cases[i].name)
					: got == NULL;
		if (!ok)
			FAILF("template '%s': detected %s, want %s",
			      cases[i].tmpl, got ? got : "(none)",
			      cases[i].name ? cases[i].name : "(none)");
	}
	CU_ASSERT_PTR_NULL(slm_chat_detect(NULL));
}

static void test_resolve_and_errors(void)
{
	struct slm_error err = {0};
	const char *name;
	/* forced wins over the model's template */
	CU_ASSERT_EQUAL(slm_chat_resolve("gemma", "<|im_start|>", &name, &err),
			0);
	CU_ASSERT_STRING_EQUAL(name, "gemma");
	/* a model without a template gets chatml, as in llama.cpp */
	CU_ASSERT_EQUAL(slm_chat_resolve(NULL, NULL, &name, &err), 0);
	CU_ASSERT_STRING_EQUAL(name, "chatml");
	CU_ASSERT_EQUAL(slm_chat_resolve("", "", &name, &err), 0);
	CU_ASSERT_STRING_EQUAL(name, "chatml");
	/* an unknown forced name names the supported ones */
	CU_ASSERT_EQUAL(slm_chat_resolve("alpaca", NULL, &name, &err),
			SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'alpaca'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "chatml, llama2"));
	CU_ASSERT_PTR_NULL(name);
	/* an unknown template */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_chat_resolve(NULL, "{{ messages }}", &name, &err),
			SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "supported: chatml"));
	/* a template of a family llama.cpp knows, not supported here */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		slm_chat_resolve(NULL, "GPT4 Correct User", &name, &err),
		SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'openchat'"));
	/* apply: unknown name, missing content */
	struct slm_text t = {0};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_chat_apply("vicuna", conv, 1, true, &t, &err),
			SLM_EUNSUPPORTED);
	slm_error_clear(&err);
	struct slm_chat_msg bad = {"user", NULL};
	CU_ASSERT_EQUAL(slm_chat_apply("chatml", &bad, 1, true, &t, &err),
			SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no content"));
	slm_text_free(&t);
}

SLM_SUITE("chat", NULL, NULL, {"golden chat prompts", test_golden_chat_prompts},
	  {"full vocabularies' templates", test_full_vocab_templates},
	  {"formats of every template", test_formats},
	  {"detection by marker", test_detect},
	  {"resolve and errors", test_resolve_and_errors})
