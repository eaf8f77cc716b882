/*
 * chat.h: chat templates, without a Jinja interpreter.
 *
 * A model's `tokenizer.chat_template` is Jinja; llama.cpp does not run it
 * for llama_chat_apply_template either: it recognises the template by
 * markers only one family uses and formats with a built-in formatter.
 * This module does the same, with llama.cpp's markers in llama.cpp's
 * order, so it picks the template llama.cpp picks, and formats exactly as
 * llama.cpp's built-in formatters do.
 *
 * Supported templates (names as llama.cpp's): chatml (Qwen, SmolLM,
 * Hermes, ...), llama2 and its variants llama2-sys, llama2-sys-bos,
 * llama2-sys-strip, llama3, mistral-v1, mistral-v3, mistral-v3-tekken,
 * mistral-v7, mistral-v7-tekken, phi3, phi4, falcon3, zephyr, gemma,
 * glmedge, smolvlm.  A template llama.cpp would take for another family
 * (vicuna, command-r, deepseek, ...) is "unknown" here.
 *
 * The formatted text is meant to be tokenized with special-token parsing
 * (SLM_TOK_PARSE_SPECIAL) and the vocabulary's add_special, as llama.cpp
 * does; none of the templates writes the BOS itself.
 */
#ifndef SLM_ENGINE_CHAT_H
#define SLM_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/text.h"

/* One message; role is passed through ("system", "user", "assistant",
 * "tool", ...), except where a template renames or merges it. */
struct slm_chat_msg {
	const char *role;
	const char *content;
};

/*
 * The name of the template a tokenizer.chat_template text is, or NULL
 * when it is none of the supported ones.  A text that is itself a
 * supported name is that template (as llama.cpp).  NULL text: NULL.
 * The returned name is static.
 */
const char *slm_chat_detect(const char *template_text);

/* True when name is a supported template. */
bool slm_chat_supported(const char *name);

/* The supported names, comma-separated (static), for messages. */
const char *slm_chat_names(void);

/*
 * Choose the template: `forced` (a name; NULL or "" for none) wins and
 * must be supported; otherwise detect it from template_text; a model
 * without a template gets chatml (llama.cpp's fallback).  Errors:
 * SLM_EUNSUPPORTED, naming what was asked or what the template looks
 * like, and the supported names.  *name is static.
 */
int slm_chat_resolve(const char *forced, const char *template_text,
		     const char **name, struct slm_error *err) SLM_MUST_CHECK;

/*
 * Format n messages with template `name` and append to out; with
 * add_generation_prompt the text ends with the opening of an assistant
 * turn.  Errors: SLM_EUNSUPPORTED (unknown name), SLM_EINVAL (a message
 * without role or content), SLM_ENOMEM.
 */
int slm_chat_apply(const char *name, const struct slm_chat_msg *msgs, size_t n,
		   bool add_generation_prompt, struct slm_text *out,
		   struct slm_error *err) SLM_MUST_CHECK;

#endif
