/*
 * crawler.pages._simhash: the SimHash of a page's visible text, in one pass in C.
 *
 * Optional: crawler/pages/simhash.py computes the same value in Python when
 * this module is not built (no compiler) or CRAWLER_NO_EXTENSIONS is set, and
 * tests/test_simhash_accel.py holds the two to the same result on every input.
 *
 * The definition both follow (simhash.py's docstring says why):
 *   - words: the text's UTF-8 decoded ("replace"), lower-cased and split at
 *     white space exactly as Python's str.lower().split() does; the first
 *     max_words of them count;
 *   - each distinct word is hashed: FNV-1a 64 over its UTF-8 bytes taken 8 at
 *     a time (little-endian, the last chunk padded with zeros), then its
 *     length, then the 64-bit finalizer of MurmurHash3 (fmix64), which gives
 *     FNV's weak low bits a full avalanche;
 *   - bit b of the SimHash is set when more than half of the distinct words'
 *     hashes have bit b set.
 *
 * Why C: splitting a 15 KB text into Python objects and a set of them cost
 * 1.2 M instructions a page, more than the 10% of a page the issue allowed;
 * here each byte costs a few instructions and no object is made. A word with
 * a non-ASCII letter is lower-cased by Python's own str.lower (rare on most
 * pages), so the Unicode rules are Python's, not a copy of them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Bytes of a white-space character that starts at s[i] (as str.isspace()
 * knows them, Unicode 14-15: the same list), or 0. Only exact, valid UTF-8
 * encodings count: an invalid byte decodes to U+FFFD, which is no space. */
static inline Py_ssize_t space_at(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) {
    unsigned char c = s[i];
    if (c < 0x80) {
        return (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) ? 1 : 0;
    }
    if (c == 0xc2 && i + 1 < n) {
        return (s[i + 1] == 0x85 || s[i + 1] == 0xa0) ? 2 : 0;
    }
    if (i + 2 >= n) {
        return 0;
    }
    unsigned char d = s[i + 1], e = s[i + 2];
    switch (c) {
    case 0xe1: /* U+1680 */
        return (d == 0x9a && e == 0x80) ? 3 : 0;
    case 0xe2: /* U+2000-200A, U+2028, U+2029, U+202F, U+205F */
        if (d == 0x80) {
            return ((e >= 0x80 && e <= 0x8a) || e == 0xa8 || e == 0xa9 || e == 0xaf) ? 3 : 0;
        }
        return (d == 0x81 && e == 0x9f) ? 3 : 0;
    case 0xe3: /* U+3000 */
        return (d == 0x80 && e == 0x80) ? 3 : 0;
    default:
        return 0;
    }
}

/* What a byte is to the word loop: an ASCII byte of a word maps to its
 * lower-case self (below 0x80), ASCII white space to 0xff, and a non-ASCII
 * byte to 0x80, which sends the loop to space_at. Filled once. */
static unsigned char byte_class[256];

static void fill_byte_class(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char value = (unsigned char)c;
        if (c >= 0x80) {
            value = 0x80;
        } else if (space_at(&value, 0, 1)) {
            value = 0xff;
        } else if (c >= 'A' && c <= 'Z') {
            value = (unsigned char)(c + ('a' - 'A'));
        }
        byte_class[c] = value;
    }
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* 8 bytes from s, little-endian; past n they read as 0. */
static inline uint64_t load8(const unsigned char *s, Py_ssize_t n) {
    uint64_t x;
    if (__builtin_expect(n >= 8, 1)) {
        memcpy(&x, s, 8); /* one load */
    } else {
        x = 0;
        for (Py_ssize_t k = 0; k < n; k++) {
            x |= (uint64_t)s[k] << (8 * k);
        }
        return x;
    }
#if PY_BIG_ENDIAN
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* A high bit in each byte of x below 0x21 (white space, other controls and
 * the 0 past a text's end) or above 0x7f (non-ASCII); the lowest one is exact
 * (a borrow only marks bytes above a marked one). */
static inline uint64_t special_bytes(uint64_t x) {
    return (((x - 0x21 * ONES) & ~x) | x) & HIGHS;
}

/* x with its bytes 'A'-'Z' lower-cased; every byte of x below 0x80. */
static inline uint64_t ascii_lower(uint64_t x) {
    uint64_t from_a = (x + (0x80 - 'A') * ONES) & HIGHS;
    uint64_t past_z = (x + (0x80 - 'Z' - 1) * ONES) & HIGHS;
    return x | ((from_a & ~past_z) >> 2);
}

/* The word hash (simhash.py's word_hash): FNV-1a 64 over the word's 8-byte
 * little-endian chunks (the last one padded with zeros), then its length, then
 * fmix64. ascii: lower-case the ASCII letters on the way (the word holds no
 * other byte above 0x7f). */
static uint64_t hash_word(const unsigned char *s, Py_ssize_t n, int ascii) {
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t k = 0; k < n; k += 8) {
        uint64_t x = load8(s + k, n - k);
        h = (h ^ (ascii ? ascii_lower(x) : x)) * FNV_PRIME;
    }
    return fmix64(h ^ (uint64_t)n);
}

/* The hash of a word with a non-ASCII byte, lower-cased by str.lower. -1 on error. */
static int unicode_word_hash(const unsigned char *s, Py_ssize_t n, uint64_t *out) {
    PyObject *word = PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    if (word == NULL) {
        return -1;
    }
    PyObject *lower = PyObject_CallMethod(word, "lower", NULL);
    Py_DECREF(word);
    if (lower == NULL) {
        return -1;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(lower, &size);
    if (utf8 == NULL) {
        Py_DECREF(lower);
        return -1;
    }
    *out = hash_word((const unsigned char *)utf8, size, 0);
    Py_DECREF(lower);
    return 0;
}

/* The end of the word that starts at s[i] (not a space): the first white
 * space after it, or n. *ascii: whether it holds only ASCII bytes. */
static Py_ssize_t word_end(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, int *ascii) {
    *ascii = 1;
    while (i < n) {
        unsigned char c = byte_class[s[i]];
        if (c < 0x80) {
            i++;
        } else if (c == 0xff || space_at(s, i, n)) {
            break;
        } else {
            *ascii = 0;
            i++;
        }
    }
    return i;
}

/* The next word at or after s[*at]: its start (its end in *end, its hash in
 * *hash, where to look next in *at), or -1 past the last word, or -2 on a
 * Python error.
 *
 * The fast path reads a word 8 bytes at a time: special_bytes finds where it
 * stops, and a word of letters, digits and punctuation ending at ASCII white
 * space or the text's end (nearly every word) is hashed as it is read, with
 * no byte loop. Any other word (a control character, a non-ASCII byte, a
 * Unicode space) is measured by word_end and hashed by hash_word: the same
 * hash. Inlined into each caller, with restrict, so that the caller's
 * counters stay in registers. */
static inline __attribute__((always_inline)) Py_ssize_t
next_word(const unsigned char *restrict s, Py_ssize_t n, Py_ssize_t *restrict at,
          uint64_t *restrict hash, Py_ssize_t *restrict end) {
    Py_ssize_t i = *at;
    for (;;) { /* skip white space */
        if (i >= n) {
            return -1;
        }
        unsigned char c = byte_class[s[i]];
        if (c < 0x80) {
            break;
        }
        Py_ssize_t skip = c == 0xff ? 1 : space_at(s, i, n);
        if (skip == 0) {
            break;
        }
        i += skip;
    }
    Py_ssize_t start = i;
    uint64_t h = FNV_OFFSET;
    for (;;) {
        uint64_t x = load8(s + i, n - i);
        uint64_t special = special_bytes(x);
        if (special == 0) {
            h = (h ^ ascii_lower(x)) * FNV_PRIME;
            i += 8;
            continue;
        }
        Py_ssize_t ordinary = __builtin_ctzll(special) >> 3;
        i += ordinary;
        if (i < n && byte_class[s[i]] != 0xff) {
            break; /* not plain ASCII white space: the slow path */
        }
        if (ordinary > 0) {
            h = (h ^ ascii_lower(x & (~0ULL >> (64 - 8 * ordinary)))) * FNV_PRIME;
        }
        *hash = fmix64(h ^ (uint64_t)(i - start));
        *end = i;
        *at = i + 1; /* past the space (or the end) that ended it */
        return start;
    }
    int ascii;
    i = word_end(s, start, n, &ascii);
    if (ascii) {
        *hash = hash_word(s + start, i - start, 1);
    } else if (unicode_word_hash(s + start, i - start, hash) < 0) {
        return -2;
    }
    *end = *at = i;
    return start;
}

/* An open-addressed set of 64-bit word hashes, at most half full. A hash of 0
 * is kept aside (0 marks a free slot). Two distinct words count once only if
 * their 64-bit hashes are equal: for a page's few thousand words, a chance
 * near 2^-40. */
typedef struct {
    uint64_t *slots;
    size_t mask;
    size_t used;
    size_t limit; /* grow past this many */
    int has_zero;
    uint64_t small[512]; /* most pages' distinct words fit: no growth */
} HashSet;

static void set_init(HashSet *set) {
    set->slots = set->small;
    set->mask = 511;
    set->used = 0;
    set->limit = 256;
    set->has_zero = 0;
    memset(set->small, 0, sizeof(set->small));
}

static void set_free(HashSet *set) {
    if (set->slots != set->small) {
        free(set->slots);
    }
}

/* 1 if h was new, 0 if it was there. */
static inline int set_place(uint64_t *restrict slots, size_t mask, uint64_t h) {
    size_t at = (size_t)h & mask;
    while (slots[at] != 0) {
        if (slots[at] == h) {
            return 0;
        }
        at = (at + 1) & mask;
    }
    slots[at] = h;
    return 1;
}

/* Doubles the table. 0, or -1 when out of memory. */
static int set_grow(HashSet *set) {
    size_t size = 2 * (set->mask + 1);
    uint64_t *grown = calloc(size, sizeof(uint64_t));
    if (grown == NULL) {
        return -1;
    }
    for (size_t k = 0; k <= set->mask; k++) {
        if (set->slots[k] != 0) {
            set_place(grown, size - 1, set->slots[k]);
        }
    }
    set_free(set);
    set->slots = grown;
    set->mask = size - 1;
    set->limit = size / 2;
    return 0;
}

/* byte_lanes[v]: bit j of v as byte j (0 or 1) of a uint64. Filled once. */
static uint64_t byte_lanes[256];

static void fill_byte_lanes(void) {
    for (int v = 0; v < 256; v++) {
        uint64_t spread = 0;
        for (int j = 0; j < 8; j++) {
            spread |= (uint64_t)((v >> j) & 1) << (8 * j);
        }
        byte_lanes[v] = spread;
    }
}

static void add_lanes(uint32_t counts[64], uint64_t lanes[8]) {
    for (int k = 0; k < 8; k++) {
        for (int j = 0; j < 8; j++) {
            counts[8 * k + j] += (uint32_t)((lanes[k] >> (8 * j)) & 0xff);
        }
        lanes[k] = 0;
    }
}

/* The SimHash of a set's hashes: bit b set where more than half have it.
 * *weak gets up to weak_cap of its weak bits (crawler.pages.simhash.weak_bits):
 * those one word more, fewer or changed could flip, margin 2*count - total in
 * 0..1 first, then -1 or 2, each from bit 0 up. */
static uint64_t majority(const HashSet *set, uint64_t *weak, int weak_cap) {
    uint64_t total = set->used + (uint64_t)set->has_zero;
    /* byte k of a hash, through byte_lanes, adds its 8 bits to 8 byte-wide
     * counters at once (lanes[k]); they are emptied into counts before any
     * can pass 255. */
    uint32_t counts[64] = {0};
    uint64_t lanes[8] = {0};
    unsigned pending = 0;
    for (size_t slot = 0; slot <= set->mask; slot++) {
        uint64_t h = set->slots[slot];
        if (h == 0) {
            continue;
        }
        for (int k = 0; k < 8; k++) {
            lanes[k] += byte_lanes[(h >> (8 * k)) & 0xff];
        }
        if (++pending == 255) {
            add_lanes(counts, lanes);
            pending = 0;
        }
    }
    add_lanes(counts, lanes);
    uint64_t simhash = 0;
    for (int b = 0; b < 64; b++) {
        if (2 * (uint64_t)counts[b] > total) {
            simhash |= 1ULL << b;
        }
    }
    uint64_t mask = 0;
    int taken = 0;
    for (int pass = 0; total > 0 && pass < 2 && taken < weak_cap; pass++) {
        for (int b = 0; b < 64 && taken < weak_cap; b++) {
            int64_t margin = 2 * (int64_t)counts[b] - (int64_t)total;
            int weakest = margin == 0 || margin == 1;
            if (pass == 0 ? weakest : (margin == -1 || margin == 2)) {
                mask |= 1ULL << b;
                taken++;
            }
        }
    }
    *weak = mask;
    return simhash;
}

static PyObject *simhash_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if ((nargs != 2 && nargs != 3) || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "simhash_text(text: bytes, max_words: int[, weak_bits: int])");
        return NULL;
    }
    Py_ssize_t max_words = PyLong_AsSsize_t(args[1]);
    if (max_words == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long weak_cap = 0;
    if (nargs == 3) {
        weak_cap = PyLong_AsLong(args[2]);
        if (weak_cap == -1 && PyErr_Occurred()) {
            return NULL;
        }
        weak_cap = weak_cap < 0 ? 0 : (weak_cap > 64 ? 64 : weak_cap);
    }
    if (max_words < 0) {
        max_words = PY_SSIZE_T_MAX;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    HashSet set;
    set_init(&set);
    uint64_t *slots = set.slots;
    size_t mask = set.mask, used = 0, limit = set.limit;
    Py_ssize_t at = 0, start, end;
    uint64_t h = 0;
    for (Py_ssize_t words = 0; words < max_words; words++) {
        start = next_word(s, n, &at, &h, &end);
        if (start == -1) {
            break;
        }
        if (start == -2) {
            set_free(&set);
            return NULL;
        }
        if (h == 0) {
            set.has_zero = 1;
            continue;
        }
        used += set_place(slots, mask, h);
        if (used >= limit) {
            set.used = used;
            if (set_grow(&set) < 0) {
                set_free(&set);
                return PyErr_NoMemory();
            }
            slots = set.slots;
            mask = set.mask;
            limit = set.limit;
        }
    }
    set.used = used;
    uint64_t weak = 0;
    uint64_t simhash = majority(&set, &weak, (int)weak_cap);
    set_free(&set);
    if (nargs == 2) {
        return PyLong_FromUnsignedLongLong(simhash);
    }
    return Py_BuildValue("(KK)", (unsigned long long)simhash, (unsigned long long)weak);
}

/* For the tests: (word as found, its hash) for every word, as simhash_text splits them. */
static PyObject *words_and_hashes(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "words_and_hashes(text: bytes)");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(text);
    Py_ssize_t n = PyBytes_GET_SIZE(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0, start, end;
    uint64_t h = 0;
    while ((start = next_word(s, n, &at, &h, &end)) >= 0) {
        PyObject *item = Py_BuildValue("(y#K)", (const char *)s + start, end - start,
                                       (unsigned long long)h);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    if (start == -2) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"simhash_text", (PyCFunction)(void (*)(void))simhash_text, METH_FASTCALL,
     "simhash_text(text: bytes, max_words: int) -> int: the SimHash of a UTF-8 text;\n"
     "simhash_text(text, max_words, weak_bits) -> (int, int): and up to weak_bits of its weak bits."},
    {"words_and_hashes", (PyCFunction)words_and_hashes, METH_O,
     "words_and_hashes(text: bytes) -> list[tuple[bytes, int]]: each word and its hash."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "crawler.pages._simhash",
    "The SimHash of a visible text in C (crawler.pages.simhash has the same in Python).",
    0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__simhash(void) {
    fill_byte_class();
    fill_byte_lanes();
    PyObject *module = PyModule_Create(&module_def);
#ifdef Py_GIL_DISABLED
    /* Free-threaded builds: no shared state is written after the tables
     * above, so importing this need not turn the GIL back on. */
    if (module != NULL) {
        PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED);
    }
#endif
    return module;
}
