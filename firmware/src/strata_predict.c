/* Predicted frames: the closed-loop reference, block skip flags and modular residuals of
 * docs/bitstream.md ("Predicted frames"), byte for byte as mcucoder/predictive.py codes
 * them. Each chunk's tables are picked as the contract says: the fewest bits counted in
 * integers (the generated cost of each frequency, in 2^-12 bits), the first among equal
 * ones; no floating point anywhere. */
#include "strata_predict.h"

#include <string.h>

#include "mcucoder_tables.h"
#include "strata_packet.h"
#include "strata_predict_tables.h"

#define RANS_L (1u << 23)
#define V2_HEADER (STRATA_HEADER_SIZE + 2) /* + block, motion */
#define MODE_INTRA 0
#define MODE_PREDICTED 1
#define N_CTX 4
#define COUNTS (N_CTX * STRATA_P_SYMBOLS) /* uint16 residual counts per context */
#define MAX_CELLS 65535u                  /* so the counts fit 16 bits */

typedef char p_tables_fit[(STRATA_P_SYMBOLS == 255 && STRATA_P_CENTRE == 127) ? 1 : -1];
/* a chunk's cost under one table (at most MAX_CELLS symbols) fits 32 bits */
typedef char p_costs_fit[(STRATA_P_COST_MAX <= 0xffffffffu / MAX_CELLS) ? 1 : -1];

size_t strata_stream_memory_size(uint16_t width, uint16_t height)
{
    const size_t cells = (size_t)((width + 7) / 8) * ((height + 7) / 8);
    if (width == 0 || height == 0 || cells > MAX_CELLS) {
        return 0;
    }
    return MCUCODER_N_CHANNELS * cells + (cells + 7) / 8 + 1 + 2 * COUNTS; /* +1: alignment */
}

size_t strata_stream_packet_max_size(uint16_t width, uint16_t height, uint8_t channels)
{
    /* per channel: a predicted chunk (mode, check, selectors, state, <= 2 bytes per flag
     * and per residual) and room below it for the intra chunk it is compared with */
    const size_t n = (size_t)((width + 7) / 8) * ((height + 7) / 8);
    return V2_HEADER + (size_t)channels * (5 + 1 + 6 + 4 + 4 * n + 4 + 2 * n) + STRATA_CRC_SIZE;
}

strata_status_t strata_stream_init(strata_stream_t *s, void *memory, size_t size,
                                   uint16_t key_interval, uint8_t block, uint8_t dead_zone)
{
    if (s == NULL || memory == NULL || key_interval < 1 || block < 1) {
        return STRATA_ERR_ARG;
    }
    memset(s, 0, sizeof *s);
    s->memory = (uint8_t *)memory;
    s->size = size;
    s->key_interval = key_interval;
    s->block = block;
    s->dead_zone = dead_zone;
    s->last_motion = 255;
    return STRATA_OK;
}

void strata_request_key_frame(strata_stream_t *s)
{
    if (s != NULL) {
        s->key_requested = 1;
    }
}

/* One channel's plane and what the coder needs of it. */
typedef struct {
    const uint8_t *sym; /* symbol indices of this frame */
    const uint8_t *ref; /* the reference's */
    const uint8_t *coded; /* a bit per block: coded (1) or skipped */
    int w, h, bs, nbx, n;  /* grid, block side, blocks per row, alphabet size */
} plane_t;

static int block_coded(const plane_t *p, int y, int x)
{
    const int b = (y / p->bs) * p->nbx + x / p->bs;
    return (p->coded[b >> 3] >> (b & 7)) & 1;
}

/* Symbol - reference modulo the alphabet, in -(n/2) .. (n-1)/2 (a cell of a coded block). */
static int wrapped(const plane_t *p, int y, int x)
{
    int d = (int)p->sym[y * p->w + x] - (int)p->ref[y * p->w + x];
    if (d < 0) {
        d += p->n;
    }
    return d > (p->n - 1) / 2 ? d - p->n : d;
}

/* |residual| of any cell: 0 outside the grid and in a skipped block. */
static int magnitude(const plane_t *p, int y, int x)
{
    const int r = y < 0 || x < 0 || !block_coded(p, y, x) ? 0 : wrapped(p, y, x);
    return r < 0 ? -r : r;
}

static int magnitude_coded(const plane_t *p, int y, int x)
{
    const int r = wrapped(p, y, x);
    return r < 0 ? -r : r;
}

/* Context 0..3 of cell (y, x) of the coded block whose first cell is (y0, x0), from its left
 * and top neighbours (coding method 2's): inside the block they are coded. */
static int context(const plane_t *p, int y, int x, int y0, int x0)
{
    const int a = (x > x0 ? magnitude_coded(p, y, x - 1) : magnitude(p, y, x - 1)) +
                  (y > y0 ? magnitude_coded(p, y - 1, x) : magnitude(p, y - 1, x));
    return a == 0 ? 0 : a <= MCUCODER_CTX_T1 ? 1 : a <= MCUCODER_CTX_T2 ? 2 : 3;
}

/* Residual table t: frequency, cumulative frequency and cost of symbol s. */
static uint32_t res_freq(int t, int s)
{
    return s < strata_p_lo[t] || s > strata_p_hi[t]
               ? 1u
               : strata_p_freq[strata_p_start[t] + s - strata_p_lo[t]];
}

static uint32_t res_cum(int t, int s)
{
    return s < strata_p_lo[t]   ? (uint32_t)s
           : s > strata_p_hi[t] ? (uint32_t)(s + strata_p_after[t])
                                : strata_p_cum[strata_p_start[t] + s - strata_p_lo[t]];
}

static uint32_t res_cost(int t, int s)
{
    return s < strata_p_lo[t] || s > strata_p_hi[t]
               ? strata_p_cost[STRATA_P_COST_ONE]
               : strata_p_cost[strata_p_cix[strata_p_start[t] + s - strata_p_lo[t]]];
}

/* The first of the tables of lowest cost. */
static int cheapest(const uint32_t *cost)
{
    int t, pick = 0;
    for (t = 1; t < STRATA_P_TABLES; t++) {
        pick = cost[t] < cost[pick] ? t : pick;
    }
    return pick;
}

/* The residual table coding these counts in the fewest bits (table 0 when there are
 * none: every cost is 0). nz: scratch for the nonzero symbols. */
static int pick_residual_table(const uint16_t *counts, uint8_t *nz)
{
    uint32_t cost[STRATA_P_TABLES];
    int t, i, j, m = 0;
    for (i = 0; i < STRATA_P_SYMBOLS; i++) {
        if (counts[i]) {
            nz[m++] = (uint8_t)i;
        }
    }
    for (t = 0; t < STRATA_P_TABLES; t++) {
        cost[t] = 0;
        for (j = 0; j < m; j++) {
            cost[t] += (uint32_t)counts[nz[j]] * res_cost(t, nz[j]);
        }
    }
    return cheapest(cost);
}

static int pick_skip_table(uint32_t skipped, uint32_t coded)
{
    uint32_t cost[STRATA_P_TABLES];
    int t;
    for (t = 0; t < STRATA_P_TABLES; t++) {
        cost[t] = skipped * strata_p_cost[strata_p_skip_cix[2 * t]] +
                  coded * strata_p_cost[strata_p_skip_cix[2 * t + 1]];
    }
    return cheapest(cost);
}

/* One rANS symbol (frequency f, cumulative cum) below *p; -1 when it reaches `limit`. */
static int put(uint32_t *x, uint8_t **p, const uint8_t *limit, uint32_t f, uint32_t cum)
{
    const uint32_t x_max = ((RANS_L >> MCUCODER_PROB_BITS) << 8) * f;
    while (*x >= x_max) {
        if (*p <= limit) {
            return -1;
        }
        *--*p = (uint8_t)*x;
        *x >>= 8;
    }
    *x = ((*x / f) << MCUCODER_PROB_BITS) + (*x % f) + cum;
    return 0;
}

/* The predicted chunk (without its mode byte) of a plane whose coded blocks are marked,
 * just below *end. counts: scratch for the residual counts. */
static int code_predicted(const plane_t *p, uint32_t n_coded, uint32_t n_blocks,
                          uint16_t *counts, uint8_t **end, const uint8_t *limit)
{
    const int nby = (p->h + p->bs - 1) / p->bs;
    uint8_t *q = *end;
    uint32_t check, x = RANS_L;
    uint8_t nz[STRATA_P_SYMBOLS];
    int tab[N_CTX], st, c, y, xx, by, bx;
    if (n_coded) {
        memset(counts, 0, 2 * COUNTS);
        for (by = 0; by < nby; by++) {
            for (bx = 0; bx < p->nbx; bx++) {
                const int y0 = by * p->bs, x0 = bx * p->bs;
                const int y1 = y0 + p->bs < p->h ? y0 + p->bs : p->h;
                const int x1 = x0 + p->bs < p->w ? x0 + p->bs : p->w;
                for (y = y0; block_coded(p, y0, x0) && y < y1; y++) {
                    for (xx = x0; xx < x1; xx++) {
                        counts[context(p, y, xx, y0, x0) * STRATA_P_SYMBOLS +
                               wrapped(p, y, xx) + STRATA_P_CENTRE]++;
                    }
                }
            }
        }
        st = pick_skip_table(n_blocks - n_coded, n_coded);
        for (c = 0; c < N_CTX; c++) {
            tab[c] = pick_residual_table(counts + c * STRATA_P_SYMBOLS, nz);
        }
        /* backwards: blocks last to first; in a block its residuals last to first, then
         * its flag */
        for (by = nby - 1; by >= 0; by--) {
            for (bx = p->nbx - 1; bx >= 0; bx--) {
                const int y0 = by * p->bs, x0 = bx * p->bs;
                const int y1 = y0 + p->bs < p->h ? y0 + p->bs : p->h;
                const int x1 = x0 + p->bs < p->w ? x0 + p->bs : p->w;
                const uint32_t skip_f = strata_p_skip_coded[st];
                const int is_coded = block_coded(p, y0, x0);
                for (y = y1 - 1; is_coded && y >= y0; y--) {
                    for (xx = x1 - 1; xx >= x0; xx--) {
                        const int t = tab[context(p, y, xx, y0, x0)];
                        const int s = wrapped(p, y, xx) + STRATA_P_CENTRE;
                        if (put(&x, &q, limit, res_freq(t, s), res_cum(t, s))) {
                            return -1;
                        }
                    }
                }
                if (is_coded ? put(&x, &q, limit, skip_f, (1u << MCUCODER_PROB_BITS) - skip_f)
                             : put(&x, &q, limit, (1u << MCUCODER_PROB_BITS) - skip_f, 0)) {
                    return -1;
                }
            }
        }
        if (q - limit < 7) {
            return -1;
        }
        q -= 4; /* the final state, big-endian */
        q[0] = (uint8_t)(x >> 24);
        q[1] = (uint8_t)(x >> 16);
        q[2] = (uint8_t)(x >> 8);
        q[3] = (uint8_t)x;
        *--q = (uint8_t)(tab[3] << 4);
        *--q = (uint8_t)(tab[1] << 4 | tab[2]);
        *--q = (uint8_t)(st << 4 | tab[0]);
    } else if (q - limit < 3) {
        return -1;
    }
    check = strata_crc32(0, p->ref, (size_t)p->w * p->h) & 0xffffu;
    *--q = (uint8_t)(check >> 8);
    *--q = (uint8_t)check;
    *end = q;
    return 0;
}

/* Whether any symbol of block (by, bx) moved by more than the dead zone. */
static int block_moved(const plane_t *p, int by, int bx, int dead_zone)
{
    const int y1 = (by + 1) * p->bs < p->h ? (by + 1) * p->bs : p->h;
    const int x1 = (bx + 1) * p->bs < p->w ? (bx + 1) * p->bs : p->w;
    int y, x;
    for (y = by * p->bs; y < y1; y++) {
        const uint8_t *a = p->sym + y * p->w, *r = p->ref + y * p->w;
        for (x = bx * p->bs; x < x1; x++) {
            const int d = (int)a[x] - (int)r[x];
            if (d > dead_zone || -d > dead_zone) {
                return 1;
            }
        }
    }
    return 0;
}

/* Marks the blocks that moved (coded) in p->coded; returns their count. */
static uint32_t mark_blocks(const plane_t *p, uint8_t *coded, int dead_zone)
{
    const int nby = (p->h + p->bs - 1) / p->bs;
    uint32_t n = 0;
    int by, bx, b = 0;
    for (by = 0; by < nby; by++) {
        for (bx = 0; bx < p->nbx; bx++, b++) {
            if (block_moved(p, by, bx, dead_zone)) {
                coded[b >> 3] |= (uint8_t)(1u << (b & 7));
                n++;
            } else {
                coded[b >> 3] &= (uint8_t)~(1u << (b & 7));
            }
        }
    }
    return n;
}

/* Blocks that moved in any of the first `channels` channels (the frame's motion share). */
static uint32_t count_moved(plane_t *p, const uint8_t *latent, const uint8_t *reference,
                            int channels, int dead_zone)
{
    const size_t cells = (size_t)p->w * p->h;
    const int nby = (p->h + p->bs - 1) / p->bs;
    uint32_t n = 0;
    int by, bx, c;
    for (by = 0; by < nby; by++) {
        for (bx = 0; bx < p->nbx; bx++) {
            for (c = 0; c < channels; c++) {
                p->sym = latent + c * cells;
                p->ref = reference + c * cells;
                if (block_moved(p, by, bx, dead_zone)) {
                    n++;
                    break;
                }
            }
        }
    }
    return n;
}

strata_status_t strata_code_stream(const strata_frame_t *f, const uint8_t *latent, int w8,
                                   int h8, strata_stream_t *s, uint8_t *out, size_t capacity,
                                   size_t *length)
{
    const int k = f->channels;
    const size_t cells = (size_t)w8 * h8;
    const int bs = s->block;
    const int nbx = (w8 + bs - 1) / bs;
    const uint32_t n_blocks = (uint32_t)nbx * (uint32_t)((h8 + bs - 1) / bs);
    const uint32_t distance = f->seq - s->ref_seq;
    const int same_size = s->held > 0 && s->w8 == w8 && s->h8 == h8;
    const int key = s->key_requested || !same_size || s->since_key + 1 >= s->key_interval ||
                    distance < 1 || distance > 0xffffu;
    uint8_t *coded = s->memory + MCUCODER_N_CHANNELS * cells;
    uint8_t *after_flags = coded + (cells + 7) / 8;
    uint16_t *counts = (uint16_t *)(void *)(after_flags + ((uintptr_t)after_flags & 1u));
    uint32_t lengths[STRATA_MAX_CHANNELS];
    size_t head = V2_HEADER, total;
    uint32_t changed = 0;
    uint8_t *chunks;
    strata_p_header_t v2;
    int c, predicted = 0;
    plane_t p;
    if (s->size < strata_stream_memory_size(f->width, f->height)) {
        s->held = 0; /* as after any error: a key frame next */
        return STRATA_ERR_WORKSPACE;
    }
    if (capacity < V2_HEADER + 2 * (size_t)k + STRATA_CRC_SIZE) {
        goto no_space;
    }
    p.w = w8;
    p.h = h8;
    p.bs = bs;
    p.nbx = nbx;
    p.coded = coded;
    if (same_size) { /* motion: the share of blocks that moved in a referenced channel */
        changed = count_moved(&p, latent, s->memory, k < s->held ? k : s->held, s->dead_zone);
    }
    chunks = out + capacity - STRATA_CRC_SIZE;
    for (c = k - 1; c >= 0; c--) {
        uint8_t *before = chunks;
        uint8_t *ref = s->memory + c * cells;
        const uint8_t *limit = out + head + (size_t)c + 1;
        const uint8_t *sym = latent + c * cells;
        int mode = MODE_INTRA;
        if (!key && c < s->held) {
            uint32_t n_coded;
            p.sym = sym;
            p.ref = ref;
            p.n = mcucoder_n_symbols[c];
            n_coded = mark_blocks(&p, coded, s->dead_zone);
            if (code_predicted(&p, n_coded, n_blocks, counts, &chunks, limit)) {
                goto no_space;
            }
            mode = MODE_PREDICTED;
            if (4 * n_coded > n_blocks) { /* more than a quarter moved: a scene change? */
                uint8_t *intra = chunks;
                if (strata_code_intra(c, sym, w8, h8, &intra, limit)) {
                    goto no_space;
                }
                if (chunks - intra < before - chunks) {
                    memmove(before - (chunks - intra), intra, (size_t)(chunks - intra));
                    chunks = before - (chunks - intra);
                    mode = MODE_INTRA;
                }
            }
            if (mode == MODE_PREDICTED) { /* the coded blocks take the new symbols */
                int y, x;
                for (y = 0; y < h8; y++) {
                    for (x = 0; x < w8; x += bs) {
                        if (block_coded(&p, y, x)) {
                            memcpy(ref + y * w8 + x, sym + y * w8 + x,
                                   (size_t)(x + bs < w8 ? bs : w8 - x));
                        }
                    }
                }
                predicted++;
            }
        } else if (strata_code_intra(c, sym, w8, h8, &chunks, limit)) {
            goto no_space;
        }
        if (mode == MODE_INTRA) {
            memcpy(ref, sym, cells);
        }
        if (!key) {
            if (chunks <= limit) {
                goto no_space;
            }
            *--chunks = (uint8_t)mode;
        }
        lengths[c] = (uint32_t)(before - chunks);
        head += strata_uvarint_size(lengths[c]);
    }
    total = (size_t)(out + capacity - STRATA_CRC_SIZE - chunks);
    v2.frame_type = key || predicted == 0 ? 0 : 1;
    if (!key && !v2.frame_type) { /* nothing predicted: a key frame, no mode bytes */
        uint8_t *dst = chunks, *src = chunks;
        head = V2_HEADER;
        for (c = 0; c < k; c++) {
            memmove(dst, src + 1, lengths[c] - 1);
            src += lengths[c];
            dst += --lengths[c];
            head += strata_uvarint_size(lengths[c]);
        }
        total -= (size_t)k;
    }
    if (head > (size_t)(chunks - out)) {
        goto no_space;
    }
    v2.ref = v2.frame_type ? (uint16_t)distance : 0;
    v2.block = v2.frame_type ? (uint8_t)bs : 0;
    v2.motion = 255;
    if (same_size) { /* percent of the blocks, rounded up */
        v2.motion = (uint8_t)((100u * changed + n_blocks - 1u) / n_blocks);
    }
    strata_put_packet(out, f, &v2, lengths, chunks, total, length);
    s->held = v2.frame_type ? (uint8_t)(k > s->held ? k : s->held) : (uint8_t)k;
    s->w8 = (uint16_t)w8;
    s->h8 = (uint16_t)h8;
    s->ref_seq = f->seq;
    s->since_key = v2.frame_type ? s->since_key + 1 : 0;
    s->key_requested = 0;
    s->last_key = (uint8_t)!v2.frame_type;
    s->last_motion = v2.motion;
    return STRATA_OK;
no_space:
    s->held = 0;
    return STRATA_ERR_NO_SPACE;
}
