/*
 * cpu_amx.c: the AMX trial run of slm_cpu_amx_probe (built with the AMX
 * flags; nothing else here may run before the probe said yes).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/cpu_int.h"

/* The 64-byte tile configuration (palette 1). */
struct amx_tilecfg {
	uint8_t palette;
	uint8_t start_row;
	uint8_t reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

int slm_cpu_amx_trial(void)
{
	static int8_t a[16][64]; /* 16 rows of 64 int8 */
	static int8_t b[16][64]; /* B in VNNI layout: 16 rows of 16x4 */
	static int32_t c[16][16];
	int32_t want[16][16];
	for (int i = 0; i < 16; i++)
		for (int k = 0; k < 64; k++) {
			a[i][k] = (int8_t)((i * 7 + k * 3) % 17 - 8);
			b[k / 4][(i * 4) + (k % 4)] =
				(int8_t)((k * 5 + i * 11) % 13 - 6);
		}
	/* c[i][j] = sum_k a[i][k] * B[k][j], B[k][j] = b[k/4][j*4 + k%4] */
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++) {
			int32_t s = 0;
			for (int k = 0; k < 64; k++)
				s += a[i][k] * b[k / 4][j * 4 + k % 4];
			want[i][j] = s;
		}
	struct amx_tilecfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (int t = 0; t < 3; t++) {
		cfg.colsb[t] = 64;
		cfg.rows[t] = 16;
	}
	memset(c, 0, sizeof(c));
	_tile_loadconfig(&cfg);
	_tile_zero(0);
	_tile_loadd(1, a, 64);
	_tile_loadd(2, b, 64);
	_tile_dpbssd(0, 1, 2);
	_tile_stored(0, c, 64);
	_tile_release();
	return memcmp(c, want, sizeof(want)) ? -1 : 0;
}
