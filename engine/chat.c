/*
 * chat.c: template detection by marker, in llama.cpp's order, and the
 * built-in formatters.
 */
#include "engine/chat.h"

#include <string.h>

enum chat_tmpl {
	CT_NONE = 0,
	/* supported */
	CT_CHATML,
	CT_LLAMA2,
	CT_LLAMA2_SYS,
	CT_LLAMA2_SYS_BOS,
	CT_LLAMA2_SYS_STRIP,
	CT_MISTRAL_V1,
	CT_MISTRAL_V3,
	CT_MISTRAL_V3_TEKKEN,
	CT_MISTRAL_V7,
	CT_MISTRAL_V7_TEKKEN,
	CT_PHI3,
	CT_PHI4,
	CT_FALCON3,
	CT_ZEPHYR,
	CT_GEMMA,
	CT_LLAMA3,
	CT_GLMEDGE,
	CT_SMOLVLM,
	CT__SUPPORTED,
	/* families llama.cpp knows and this module does not format: a
	 * template detected as one of them is not taken for a later one */
	CT_CHATGLM4 = CT__SUPPORTED,
	CT_MONARCH,
	CT_ORION,
	CT_OPENCHAT,
	CT_VICUNA,
	CT_VICUNA_ORCA,
	CT_DEEPSEEK,
	CT_COMMAND_R,
	CT_CHATGLM3,
	CT_MINICPM,
	CT_DEEPSEEK2,
	CT_DEEPSEEK3,
	CT_EXAONE3,
	CT_EXAONE4,
	CT_RWKV_WORLD,
	CT_GRANITE,
	CT_GIGACHAT,
	CT_MEGREZ,
	CT_YANDEX,
	CT_BAILING,
	CT_LLAMA4,
	CT_DOTS1,
	CT_HUNYUAN_MOE,
	CT_HUNYUAN_DENSE,
	CT_KIMI_K2,
	CT__COUNT
};

static const char *const tmpl_names[CT__COUNT] = {
	[CT_CHATML] = "chatml",
	[CT_LLAMA2] = "llama2",
	[CT_LLAMA2_SYS] = "llama2-sys",
	[CT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
	[CT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
	[CT_MISTRAL_V1] = "mistral-v1",
	[CT_MISTRAL_V3] = "mistral-v3",
	[CT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
	[CT_MISTRAL_V7] = "mistral-v7",
	[CT_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
	[CT_PHI3] = "phi3",
	[CT_PHI4] = "phi4",
	[CT_FALCON3] = "falcon3",
	[CT_ZEPHYR] = "zephyr",
	[CT_GEMMA] = "gemma",
	[CT_LLAMA3] = "llama3",
	[CT_GLMEDGE] = "glmedge",
	[CT_SMOLVLM] = "smolvlm",
	[CT_CHATGLM4] = "chatglm4",
	[CT_MONARCH] = "monarch",
	[CT_ORION] = "orion",
	[CT_OPENCHAT] = "openchat",
	[CT_VICUNA] = "vicuna",
	[CT_VICUNA_ORCA] = "vicuna-orca",
	[CT_DEEPSEEK] = "deepseek",
	[CT_COMMAND_R] = "command-r",
	[CT_CHATGLM3] = "chatglm3",
	[CT_MINICPM] = "minicpm",
	[CT_DEEPSEEK2] = "deepseek2",
	[CT_DEEPSEEK3] = "deepseek3",
	[CT_EXAONE3] = "exaone3",
	[CT_EXAONE4] = "exaone4",
	[CT_RWKV_WORLD] = "rwkv-world",
	[CT_GRANITE] = "granite",
	[CT_GIGACHAT] = "gigachat",
	[CT_MEGREZ] = "megrez",
	[CT_YANDEX] = "yandex",
	[CT_BAILING] = "bailing",
	[CT_LLAMA4] = "llama4",
	[CT_DOTS1] = "dots1",
	[CT_HUNYUAN_MOE] = "hunyuan-moe",
	[CT_HUNYUAN_DENSE] = "hunyuan-dense",
	[CT_KIMI_K2] = "kimi-k2",
};

const char *slm_chat_names(void)
{
	return "chatml, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, "
	       "llama3, mistral-v1, mistral-v3, mistral-v3-tekken, "
	       "mistral-v7, mistral-v7-tekken, phi3, phi4, falcon3, zephyr, "
	       "gemma, glmedge, smolvlm";
}

static enum chat_tmpl by_name(const char *name)
{
	for (int t = 1; t < CT__COUNT; t++)
		if (tmpl_names[t] && !strcmp(tmpl_names[t], name))
			return (enum chat_tmpl)t;
	return CT_NONE;
}

/* The family of a template text, supported or not (CT_NONE: none). */
static enum chat_tmpl detect(const char *t)
{
	enum chat_tmpl named = by_name(t);
	if (named != CT_NONE)
		return named;
#define HAS(s) (strstr(t, (s)) != NULL)
	if (HAS("<|im_start|>")) {
		if (HAS("<|im_sep|>"))
			return CT_PHI4;
		/* SmolVLM opens with <|im_start|> but is not chatml */
		return HAS("<end_of_utterance>") ? CT_SMOLVLM : CT_CHATML;
	}
	if (!strncmp(t, "mistral", 7) || HAS("[INST]")) {
		if (HAS("[SYSTEM_PROMPT]"))
			return CT_MISTRAL_V7;
		if (HAS("' [INST] ' + system_message") ||
		    HAS("[AVAILABLE_TOOLS]")) {
			if (HAS(" [INST]"))
				return CT_MISTRAL_V1;
			if (HAS("\"[INST]\""))
				return CT_MISTRAL_V3_TEKKEN;
			return CT_MISTRAL_V3;
		}
		if (HAS("content.strip()"))
			return CT_LLAMA2_SYS_STRIP;
		if (HAS("bos_token + '[INST]"))
			return CT_LLAMA2_SYS_BOS;
		if (HAS("<<SYS>>"))
			return CT_LLAMA2_SYS;
		return CT_LLAMA2;
	}
	if (HAS("<|assistant|>") && HAS("<|end|>"))
		return CT_PHI3;
	if (HAS("[gMASK]<sop>"))
		return CT_CHATGLM4;
	if (HAS("<|assistant|>") && HAS("<|user|>"))
		return HAS("</s>") ? CT_FALCON3 : CT_GLMEDGE;
	if (HAS("<|{{ item['role'] }}|>") && HAS("<|begin_of_image|>"))
		return CT_GLMEDGE;
	if (HAS("<|user|>") && HAS("<|endoftext|>"))
		return CT_ZEPHYR;
	if (HAS("bos_token + message['role']"))
		return CT_MONARCH;
	if (HAS("<start_of_turn>"))
		return CT_GEMMA;
	if (HAS("'\\n\\nAssistant: ' + eos_token"))
		return CT_ORION;
	if (HAS("GPT4 Correct "))
		return CT_OPENCHAT;
	if (HAS("USER: ") && HAS("ASSISTANT: "))
		return HAS("SYSTEM: ") ? CT_VICUNA_ORCA : CT_VICUNA;
	if (HAS("### Instruction:") && HAS("<|EOT|>"))
		return CT_DEEPSEEK;
	if (HAS("<|START_OF_TURN_TOKEN|>") && HAS("<|USER_TOKEN|>"))
		return CT_COMMAND_R;
	if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>"))
		return CT_LLAMA3;
	if (HAS("[gMASK]sop"))
		return CT_CHATGLM3;
	if (HAS("<\xE7\x94\xA8\xE6\x88\xB7>")) /* <用户> */
		return CT_MINICPM;
	if (HAS("'Assistant: ' + message['content'] + eos_token"))
		return CT_DEEPSEEK2;
	if (HAS("<\xEF\xBD\x9C"
		"Assistant\xEF\xBD\x9C>") &&
	    HAS("<\xEF\xBD\x9C"
		"User\xEF\xBD\x9C>") &&
	    HAS("<\xEF\xBD\x9C"
		"end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"))
		return CT_DEEPSEEK3;
	if (HAS("[|system|]") && HAS("[|assistant|]") && HAS("[|endofturn|]"))
		return HAS("[|tool|]") ? CT_EXAONE4 : CT_EXAONE3;
	if (HAS("rwkv-world") ||
	    HAS("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"))
		return CT_RWKV_WORLD;
	if (HAS("<|start_of_role|>"))
		return CT_GRANITE;
	if (HAS("message['role'] + additional_special_tokens[0] + "
		"message['content'] + additional_special_tokens[1]"))
		return CT_GIGACHAT;
	if (HAS("<|role_start|>"))
		return CT_MEGREZ;
	if (HAS(" \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5"
		"\xD0\xBD\xD1\x82:")) /* " Ассистент:" */
		return CT_YANDEX;
	if (HAS("<role>ASSISTANT</role>") && HAS("'HUMAN'"))
		return CT_BAILING;
	if (HAS("<|header_start|>") && HAS("<|header_end|>"))
		return CT_LLAMA4;
	if (HAS("<|endofuserprompt|>"))
		return CT_DOTS1;
	if (HAS("<|startoftext|>") && HAS("<|extra_4|>"))
		return CT_HUNYUAN_MOE;
	if (HAS("<\xEF\xBD\x9Chy_"
		"place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81"
		"2\xEF\xBD\x9C>") &&
	    HAS("<\xEF\xBD\x9Chy_"
		"place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81"
		"3\xEF\xBD\x9C>"))
		return CT_HUNYUAN_DENSE;
	if (HAS("<|im_assistant|>assistant<|im_middle|>"))
		return CT_KIMI_K2;
#undef HAS
	return CT_NONE;
}

const char *slm_chat_detect(const char *template_text)
{
	if (!template_text)
		return NULL;
	enum chat_tmpl t = detect(template_text);
	return t != CT_NONE && t < CT__SUPPORTED ? tmpl_names[t] : NULL;
}

bool slm_chat_supported(const char *name)
{
	enum chat_tmpl t = name ? by_name(name) : CT_NONE;
	return t != CT_NONE && t < CT__SUPPORTED;
}

int slm_chat_resolve(const char *forced, const char *template_text,
		     const char **name, struct slm_error *err)
{
	*name = NULL;
	if (forced && *forced) {
		if (!slm_chat_supported(forced))
			return slm_error_set(err, SLM_EUNSUPPORTED,
					     "unknown chat template '%s' "
					     "(supported: %s)",
					     forced, slm_chat_names());
		*name = tmpl_names[by_name(forced)];
		return 0;
	}
	if (!template_text || !*template_text) {
		*name = tmpl_names[CT_CHATML];
		return 0;
	}
	enum chat_tmpl t = detect(template_text);
	if (t == CT_NONE)
		return slm_error_set(
			err, SLM_EUNSUPPORTED,
			"the model's chat template is not one this "
			"build recognises; force one by name "
			"(supported: %s)",
			slm_chat_names());
	if (t >= CT__SUPPORTED)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "the model's chat template looks like "
				     "'%s', which is not supported; force one "
				     "by name (supported: %s)",
				     tmpl_names[t], slm_chat_names());
	*name = tmpl_names[t];
	return 0;
}

/* ---- formatting ------------------------------------------------------- */

struct out {
	struct slm_text *t;
	int rc;
};

static void put(struct out *o, const char *s)
{
	if (!o->rc && slm_text_puts(o->t, s))
		o->rc = SLM_ENOMEM;
}

static bool c_isspace(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* s without leading and trailing whitespace (C locale), as llama.cpp. */
static void put_trimmed(struct out *o, const char *s)
{
	size_t a = 0, b = strlen(s);
	while (a < b && c_isspace(s[a]))
		a++;
	while (b > a && c_isspace(s[b - 1]))
		b--;
	if (!o->rc && slm_text_append(o->t, s + a, b - a))
		o->rc = SLM_ENOMEM;
}

static void fmt_mistral(struct out *o, enum chat_tmpl t,
			const struct slm_chat_msg *m, size_t n)
{
	if (t == CT_MISTRAL_V7 || t == CT_MISTRAL_V7_TEKKEN) {
		const char *sp = t == CT_MISTRAL_V7 ? " " : "";
		for (size_t i = 0; i < n; i++) {
			if (!strcmp(m[i].role, "system")) {
				put(o, "[SYSTEM_PROMPT]");
				put(o, sp);
				put(o, m[i].content);
				put(o, "[/SYSTEM_PROMPT]");
			} else if (!strcmp(m[i].role, "user")) {
				put(o, "[INST]");
				put(o, sp);
				put(o, m[i].content);
				put(o, "[/INST]");
			} else {
				put(o, sp);
				put(o, m[i].content);
				put(o, "</s>");
			}
		}
		return;
	}
	const char *lead = t == CT_MISTRAL_V1 ? " " : "";
	const char *trail = t == CT_MISTRAL_V3_TEKKEN ? "" : " ";
	bool inside = false;
	for (size_t i = 0; i < n; i++) {
		if (!inside) {
			put(o, lead);
			put(o, "[INST]");
			put(o, trail);
			inside = true;
		}
		if (!strcmp(m[i].role, "system")) {
			put(o, m[i].content);
			put(o, "\n\n");
		} else if (!strcmp(m[i].role, "user")) {
			put(o, m[i].content);
			put(o, lead);
			put(o, "[/INST]");
		} else {
			put(o, trail);
			if (t == CT_MISTRAL_V3)
				put_trimmed(o, m[i].content);
			else
				put(o, m[i].content);
			put(o, "</s>");
			inside = false;
		}
	}
}

static void fmt_llama2(struct out *o, enum chat_tmpl t,
		       const struct slm_chat_msg *m, size_t n)
{
	bool sys = t != CT_LLAMA2;
	bool strip = t == CT_LLAMA2_SYS_STRIP;
	bool inside = true; /* no BOS before the first turn */
	put(o, "[INST] ");
	for (size_t i = 0; i < n; i++) {
		if (!inside) {
			inside = true;
			put(o,
			    t == CT_LLAMA2_SYS_BOS ? "<s>[INST] " : "[INST] ");
		}
		void (*content)(struct out *, const char *) =
			strip ? put_trimmed : put;
		if (!strcmp(m[i].role, "system")) {
			if (sys) {
				put(o, "<<SYS>>\n");
				content(o, m[i].content);
				put(o, "\n<</SYS>>\n\n");
			} else {
				/* no system turn: its text opens the first */
				content(o, m[i].content);
				put(o, "\n");
			}
		} else if (!strcmp(m[i].role, "user")) {
			content(o, m[i].content);
			put(o, " [/INST]");
		} else {
			content(o, m[i].content);
			put(o, "</s>");
			inside = false;
		}
	}
}

static void fmt_gemma(struct out *o, const struct slm_chat_msg *m, size_t n,
		      bool add)
{
	/* gemma has no system turn: its text goes into the next user turn */
	struct slm_text sys = {0};
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(m[i].role, "system")) {
			struct out so = {&sys, 0};
			put_trimmed(&so, m[i].content);
			if (so.rc)
				o->rc = so.rc;
			continue;
		}
		const char *role =
			!strcmp(m[i].role, "assistant") ? "model" : m[i].role;
		put(o, "<start_of_turn>");
		put(o, role);
		put(o, "\n");
		if (sys.len && strcmp(role, "model")) {
			put(o, sys.data);
			put(o, "\n\n");
			sys.len = 0;
		}
		put_trimmed(o, m[i].content);
		put(o, "<end_of_turn>\n");
	}
	if (add)
		put(o, "<start_of_turn>model\n");
	slm_text_free(&sys);
}

/* "<OPEN>role<MID>content<CLOSE>" per message, then the assistant opening */
static void fmt_simple(struct out *o, const struct slm_chat_msg *m, size_t n,
		       const char *open, const char *mid, const char *close,
		       bool trim, const char *gen, bool add)
{
	for (size_t i = 0; i < n; i++) {
		put(o, open);
		put(o, m[i].role);
		put(o, mid);
		if (trim)
			put_trimmed(o, m[i].content);
		else
			put(o, m[i].content);
		put(o, close);
	}
	if (add)
		put(o, gen);
}

int slm_chat_apply(const char *name, const struct slm_chat_msg *msgs, size_t n,
		   bool add_generation_prompt, struct slm_text *out,
		   struct slm_error *err)
{
	enum chat_tmpl t = name ? by_name(name) : CT_NONE;
	if (t == CT_NONE || t >= CT__SUPPORTED)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "unknown chat template '%s' (supported: "
				     "%s)",
				     name ? name : "(none)", slm_chat_names());
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return slm_error_set(err, SLM_EINVAL,
					     "chat message %zu has no %s", i,
					     msgs[i].role ? "content" : "role");
	struct out o = {out, 0};
	bool add = add_generation_prompt;
	switch (t) {
	case CT_CHATML:
		fmt_simple(&o, msgs, n, "<|im_start|>", "\n", "<|im_end|>\n",
			   false, "<|im_start|>assistant\n", add);
		break;
	case CT_LLAMA2:
	case CT_LLAMA2_SYS:
	case CT_LLAMA2_SYS_BOS:
	case CT_LLAMA2_SYS_STRIP:
		fmt_llama2(&o, t, msgs, n);
		break;
	case CT_MISTRAL_V1:
	case CT_MISTRAL_V3:
	case CT_MISTRAL_V3_TEKKEN:
	case CT_MISTRAL_V7:
	case CT_MISTRAL_V7_TEKKEN:
		fmt_mistral(&o, t, msgs, n);
		break;
	case CT_PHI3:
		fmt_simple(&o, msgs, n, "<|", "|>\n", "<|end|>\n", false,
			   "<|assistant|>\n", add);
		break;
	case CT_PHI4:
		fmt_simple(&o, msgs, n, "<|im_start|>", "<|im_sep|>",
			   "<|im_end|>", false,
			   "<|im_start|>assistant<|im_sep|>", add);
		break;
	case CT_FALCON3:
		fmt_simple(&o, msgs, n, "<|", "|>\n", "\n", false,
			   "<|assistant|>\n", add);
		break;
	case CT_ZEPHYR:
		fmt_simple(&o, msgs, n, "<|", "|>\n", "<|endoftext|>\n", false,
			   "<|assistant|>\n", add);
		break;
	case CT_GEMMA:
		fmt_gemma(&o, msgs, n, add);
		break;
	case CT_LLAMA3:
		fmt_simple(&o, msgs, n, "<|start_header_id|>",
			   "<|end_header_id|>\n\n", "<|eot_id|>", true,
			   "<|start_header_id|>assistant<|end_header_id|>\n\n",
			   add);
		break;
	case CT_GLMEDGE:
		fmt_simple(&o, msgs, n, "<|", "|>\n", "", false,
			   "<|assistant|>", add);
		break;
	case CT_SMOLVLM:
		put(&o, "<|im_start|>");
		for (size_t i = 0; i < n; i++) {
			if (!strcmp(msgs[i].role, "system")) {
				put(&o, msgs[i].content);
				put(&o, "\n\n");
			} else {
				put(&o, !strcmp(msgs[i].role, "user")
						? "User: "
						: "Assistant: ");
				put(&o, msgs[i].content);
				put(&o, "<end_of_utterance>\n");
			}
		}
		if (add)
			put(&o, "Assistant:");
		break;
	default:
		SLM_ASSERT(!"unreachable");
	}
	if (o.rc)
		return slm_error_set(err, o.rc, "out of memory");
	if (!out->data && slm_text_append(out, "", 0))
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	return 0;
}
