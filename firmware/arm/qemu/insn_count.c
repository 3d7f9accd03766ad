/* QEMU TCG plugin: counts the guest instructions executed and prints the total at exit.
 *   qemu-system-arm ... -plugin build/.../libinsn_count.so[,mark=ADDR,mark=ADDR...]
 * Debian's QEMU loads plugins but ships no plugin header: the few entry points of the
 * stable plugin API (version 1, QEMU 7.x) used here are declared below.
 *
 * With mark=ADDR arguments (addresses of the firmware's profiling marker functions,
 * strata_profile.h) it also splits the count into sections: executing the code at the
 * i-th mark starts section i + 1 (section 0: before any mark), and within each section
 * by instruction class (the mix a per-instruction cycle model needs):
 *   "section I class C count N" lines, then "insns TOTAL". */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* Instruction classes, as Arm's published Cortex-M4/M7 timing tables group them. */
/* C_XFER: the registers an LDM/STM/PUSH/POP moves beyond its first (not instructions) */
enum { C_ALU, C_MAC, C_LOAD, C_STORE, C_LDM, C_BRANCH, C_DIV, C_XFER, N_CLASS };
static const char *const class_names[N_CLASS] = {"alu", "mac",    "load", "store",
                                                 "ldm", "branch", "div",  "xfer"};
#define MAX_MARKS 16

static uint64_t insns; /* one vCPU: plain counters */
static uint64_t marks[MAX_MARKS];
static int n_marks;
static int section;
static uint64_t counts[MAX_MARKS + 1][N_CLASS];

typedef struct tb_info {
    int starts; /* section this block starts (-1: none) */
    uint32_t n[N_CLASS];
    uint64_t pc, executed; /* hot=N: blocks by instructions executed */
    uint32_t n_insns;
    struct tb_info *next;
} tb_info_t;

static int hot; /* hot=N: print the N blocks that executed the most instructions */
static tb_info_t *blocks;

static int starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Registers in a {...} list (LDM/STM/PUSH/POP): ranges r4-r7 count their span. */
static uint32_t reg_list_count(const char *s)
{
    const char *p = strchr(s, '{');
    uint32_t n = 0;
    int prev = -1;
    if (p == NULL) {
        return 1;
    }
    for (p++; *p && *p != '}'; p++) {
        if (*p == 'r' && p[1] >= '0' && p[1] <= '9') {
            int r = (int)strtol(p + 1, NULL, 10);
            n += prev >= 0 ? (uint32_t)(r - prev) : 1u;
            prev = -1;
        } else if (*p == '-') {
            const char *q = p - 1;
            while (q > s && *q != 'r') {
                q--;
            }
            prev = (int)strtol(q + 1, NULL, 10);
        } else if (starts_with(p, "ip") || starts_with(p, "lr") || starts_with(p, "pc") ||
                   starts_with(p, "fp") || starts_with(p, "sl") || starts_with(p, "sb")) {
            n++;
            p++;
        }
    }
    return n ? n : 1;
}

/* Class of one disassembled Thumb instruction ("ldr r0, [r1]", "smlad ..."). */
static int classify(const char *d, uint32_t *weight)
{
    char m[16];
    size_t i = 0;
    *weight = 1;
    while (*d == ' ' || *d == '\t') {
        d++;
    }
    while (d[i] && d[i] != ' ' && d[i] != '\t' && i + 1 < sizeof m) {
        m[i] = d[i];
        i++;
    }
    m[i] = 0;
    if (starts_with(m, "ldm") || starts_with(m, "stm") || starts_with(m, "push") ||
        starts_with(m, "pop")) {
        *weight = reg_list_count(d);
        return strstr(d, "pc") != NULL && starts_with(m, "pop") ? C_BRANCH : C_LDM;
    }
    if (starts_with(m, "ldrd") || starts_with(m, "strd")) {
        *weight = 2; /* two registers: timed as LDM/STM of two */
        return m[0] == 'l' ? C_LOAD : C_STORE;
    }
    if (starts_with(m, "ldr") || starts_with(m, "vldr")) {
        return strstr(d, "pc") == d + i + 1 ? C_BRANCH : C_LOAD;
    }
    if (starts_with(m, "str") || starts_with(m, "vstr")) {
        return C_STORE;
    }
    if (starts_with(m, "sdiv") || starts_with(m, "udiv")) {
        return C_DIV;
    }
    if (m[0] == 'b' || starts_with(m, "cbz") || starts_with(m, "cbnz") || starts_with(m, "tb")) {
        if (!starts_with(m, "bic") && !starts_with(m, "bfi") && !starts_with(m, "bfc") &&
            !starts_with(m, "bkpt")) {
            return C_BRANCH;
        }
    }
    if (strstr(m, "mul") || strstr(m, "mla") || strstr(m, "mls") || starts_with(m, "smu") ||
        starts_with(m, "sml") || starts_with(m, "umla") || starts_with(m, "umul") ||
        starts_with(m, "usad")) {
        return C_MAC;
    }
    return C_ALU;
}

static void on_exec(unsigned int vcpu, void *udata)
{
    tb_info_t *t = udata;
    int c;
    (void)vcpu;
    t->executed++;
    if (t->starts >= 0) {
        section = t->starts;
    }
    for (c = 0; c < N_CLASS; c++) {
        counts[section][c] += t->n[c];
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    const size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    if (n_marks > 0 || hot > 0) {
        tb_info_t *t = calloc(1, sizeof *t); /* kept to the end (hot=) */
        const uint64_t pc = qemu_plugin_tb_vaddr(tb);
        size_t i;
        int m;
        t->starts = -1;
        t->pc = pc;
        t->n_insns = (uint32_t)n;
        t->next = blocks;
        blocks = t;
        for (m = 0; m < n_marks; m++) {
            if (marks[m] == (pc & ~(uint64_t)1)) {
                t->starts = m + 1;
            }
        }
        for (i = 0; i < n; i++) {
            char *d = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
            uint32_t w = 1;
            const int c = d != NULL ? classify(d, &w) : C_ALU;
            t->n[c]++;
            t->n[C_XFER] += w - 1;
            free(d);
        }
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, t);
    }
}

static void report_at_exit(qemu_plugin_id_t id, void *userdata)
{
    int s, c;
    (void)id;
    (void)userdata;
    for (s = 0; n_marks > 0 && s <= n_marks; s++) {
        for (c = 0; c < N_CLASS; c++) {
            fprintf(stderr, "section %d class %s count %" PRIu64 "\n", s, class_names[c],
                    counts[s][c]);
        }
    }
    for (c = 0; c < hot; c++) { /* selection of the top blocks: N small */
        tb_info_t *t, *best = NULL;
        for (t = blocks; t != NULL; t = t->next) {
            if (t->n_insns && (best == NULL || t->executed * t->n_insns >
                                                   best->executed * best->n_insns)) {
                best = t;
            }
        }
        if (best == NULL) {
            break;
        }
        fprintf(stderr, "hot 0x%08" PRIx64 " insns %u executed %" PRIu64 "\n", best->pc,
                best->n_insns, best->executed);
        best->n_insns = 0;
    }
    fprintf(stderr, "insns %" PRIu64 "\n", insns);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const struct qemu_info_t *info,
                                                               int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (starts_with(argv[i], "mark=") && n_marks < MAX_MARKS) {
            marks[n_marks++] = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1;
        } else if (starts_with(argv[i], "hot=")) {
            hot = atoi(argv[i] + 4);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report_at_exit, NULL);
    return 0;
}
