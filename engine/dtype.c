#include "engine/dtype.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/compiler.h"

struct dtype_info {
	const char *name;
	uint32_t block;	      /* elements per block; 0 = retired id */
	uint32_t block_bytes; /* bytes per block */
	bool weight_supported;
};

/* Geometry of every type in the GGUF format (ggml's block layouts). */
static const struct dtype_info dtypes[SLM_DTYPE__COUNT] = {
	[SLM_DTYPE_F32] = {"F32", 1, 4, true},
	[SLM_DTYPE_F16] = {"F16", 1, 2, true},
	[SLM_DTYPE_Q4_0] = {"Q4_0", 32, 18, true},
	[SLM_DTYPE_Q4_1] = {"Q4_1", 32, 20, true},
	[SLM_DTYPE_Q5_0] = {"Q5_0", 32, 22, true},
	[SLM_DTYPE_Q5_1] = {"Q5_1", 32, 24, true},
	[SLM_DTYPE_Q8_0] = {"Q8_0", 32, 34, true},
	[SLM_DTYPE_Q8_1] = {"Q8_1", 32, 36, false},
	[SLM_DTYPE_Q2_K] = {"Q2_K", 256, 84, true},
	[SLM_DTYPE_Q3_K] = {"Q3_K", 256, 110, true},
	[SLM_DTYPE_Q4_K] = {"Q4_K", 256, 144, true},
	[SLM_DTYPE_Q5_K] = {"Q5_K", 256, 176, true},
	[SLM_DTYPE_Q6_K] = {"Q6_K", 256, 210, true},
	[SLM_DTYPE_Q8_K] = {"Q8_K", 256, 292, false},
	[SLM_DTYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, false},
	[SLM_DTYPE_IQ2_XS] = {"IQ2_XS", 256, 74, false},
	[SLM_DTYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, false},
	[SLM_DTYPE_IQ1_S] = {"IQ1_S", 256, 50, false},
	[SLM_DTYPE_IQ4_NL] = {"IQ4_NL", 32, 18, false},
	[SLM_DTYPE_IQ3_S] = {"IQ3_S", 256, 110, false},
	[SLM_DTYPE_IQ2_S] = {"IQ2_S", 256, 82, false},
	[SLM_DTYPE_IQ4_XS] = {"IQ4_XS", 256, 136, false},
	[SLM_DTYPE_I8] = {"I8", 1, 1, false},
	[SLM_DTYPE_I16] = {"I16", 1, 2, false},
	[SLM_DTYPE_I32] = {"I32", 1, 4, false},
	[SLM_DTYPE_I64] = {"I64", 1, 8, false},
	[SLM_DTYPE_F64] = {"F64", 1, 8, false},
	[SLM_DTYPE_IQ1_M] = {"IQ1_M", 256, 56, false},
	[SLM_DTYPE_BF16] = {"BF16", 1, 2, true},
	[SLM_DTYPE_TQ1_0] = {"TQ1_0", 256, 54, false},
	[SLM_DTYPE_TQ2_0] = {"TQ2_0", 256, 66, false},
	[SLM_DTYPE_MXFP4] = {"MXFP4", 32, 17, false},
};

static const struct dtype_info *info_of(uint32_t id)
{
	if (id >= SLM_DTYPE__COUNT || dtypes[id].block == 0)
		return NULL;
	return &dtypes[id];
}

bool slm_dtype_known(uint32_t id)
{
	return info_of(id) != NULL;
}

const char *slm_dtype_name(uint32_t id)
{
	const struct dtype_info *d = info_of(id);
	if (d)
		return d->name;
	static __thread char unknown[32];
	snprintf(unknown, sizeof(unknown), "type %u", id);
	return unknown;
}

int slm_dtype_from_name(const char *name)
{
	for (uint32_t id = 0; id < SLM_DTYPE__COUNT; id++)
		if (dtypes[id].block && !strcasecmp(dtypes[id].name, name))
			return (int)id;
	return -1;
}

uint32_t slm_dtype_block(uint32_t id)
{
	const struct dtype_info *d = info_of(id);
	return d ? d->block : 0;
}

uint32_t slm_dtype_block_bytes(uint32_t id)
{
	const struct dtype_info *d = info_of(id);
	return d ? d->block_bytes : 0;
}

bool slm_dtype_row_bytes(uint32_t id, uint64_t n, uint64_t *bytes)
{
	const struct dtype_info *d = info_of(id);
	if (!d || n % d->block)
		return false;
	return !__builtin_mul_overflow(n / d->block, (uint64_t)d->block_bytes,
				       bytes);
}

bool slm_dtype_weight_supported(uint32_t id)
{
	const struct dtype_info *d = info_of(id);
	return d && d->weight_supported;
}

const char *slm_dtype_supported_list(void)
{
	return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
	       "Q4_K, Q5_K, Q6_K";
}
