/*
 * _speedups: the codec's hot loops in C (optional; see accel.py and docs/PERFORMANCE.md).
 *
 * Three jobs, each the compiled twin of a Python function of the codec:
 *
 *   shape_key(raw)            the schema pass's top-level walk (schema.SchemaBuilder.add)
 *   RowEncoder.encode(raw)    one raw BSON document -> one CSV row (rows.RowEncoder._exact_row)
 *   RowDecoder.decode(row, plan, missing)
 *                             one CSV row -> raw BSON (rows.RowDecoder._exact_document)
 *
 * plus to_json_text / from_json_text / decimal_text (dialect.py, cells.py) for the tests.
 *
 * The contract: every function returns exactly what the exact Python walker
 * returns for the same input, or None ("not handled here"), and the exact
 * walker then runs and decides, including the errors the format defines. So this code only handles the canonical forms
 * it is sure about and returns None for everything else: malformed BSON
 * (every length is checked against its enclosing document before anything is
 * read), invalid UTF-8, cell texts that Python's int()/float()/fromisoformat
 * would read but that the writer never writes (white space, '+', '_', ...),
 * rare wrappers, nesting deeper than MAX_DEPTH. A Python exception (only
 * MemoryError) propagates as such.
 *
 * No Python object is kept between calls and no Python code runs inside a
 * call, so the functions are safe to call from several threads (under the GIL).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#ifndef SPEEDUPS_SOURCE_SHA256
#define SPEEDUPS_SOURCE_SHA256 ""
#endif

#define OK 0
#define NOPE 1    /* not handled here: the exact walker runs */
#define ERR (-1)  /* a Python exception is set */
#define W_ELEM 2  /* walk_next: an element was read (0: the end of the document, NOPE: malformed) */

#define MAX_DEPTH 128

enum {
    T_DOUBLE = 1, T_STRING = 2, T_DOC = 3, T_ARRAY = 4, T_BINARY = 5, T_UNDEFINED = 6, T_OID = 7,
    T_BOOL = 8, T_DATE = 9, T_NULL = 10, T_REGEX = 11, T_DBPOINTER = 12, T_CODE = 13, T_SYMBOL = 14,
    T_CODE_W_SCOPE = 15, T_INT32 = 16, T_TIMESTAMP = 17, T_INT64 = 18, T_DECIMAL = 19,
    T_MINKEY = 255, T_MAXKEY = 127
};
/* Cell types are named by the BSON type of their plain form; json is 0. */
#define C_JSON 0
/* shape_key's type byte for a datetime outside years 1..9999 (a json cell); no BSON type has it */
#define SHAPE_DATE_AS_JSON 0xFE

#define MIN_ISO_MS (-62135596800000LL)
#define MAX_ISO_MS 253402300799999LL
#define INT32_LIMIT 2147483648LL

/* ------------------------------------------------------------------------
 * A growable byte buffer: starts in caller-provided (stack) memory, moves to the heap when full. */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int heap;
} Buf;

#define BUF_INIT(b, stack) do { (b).data = (stack); (b).len = 0; (b).cap = sizeof(stack); (b).heap = 0; } while (0)

static int
buf_grow(Buf *b, size_t extra)
{
    size_t need = b->len + extra;
    if (need < b->len || need > (size_t)PY_SSIZE_T_MAX) {
        PyErr_NoMemory();
        return ERR;
    }
    size_t cap = b->cap * 2;
    if (cap < need)
        cap = need;
    char *p;
    if (b->heap) {
        p = PyMem_Realloc(b->data, cap);
    }
    else {
        p = PyMem_Malloc(cap);
        if (p != NULL && b->len)
            memcpy(p, b->data, b->len);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    b->data = p;
    b->cap = cap;
    b->heap = 1;
    return OK;
}

static void
buf_free(Buf *b)
{
    if (b->heap)
        PyMem_Free(b->data);
    b->heap = 0;
}

#define RESERVE(b, n) do { if ((b)->cap - (b)->len < (size_t)(n) && buf_grow((b), (size_t)(n)) < 0) return ERR; } while (0)
#define TRY(expr) do { int r_ = (expr); if (r_ != OK) return r_; } while (0)

static inline int
put_bytes(Buf *b, const void *p, size_t n)
{
    RESERVE(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return OK;
}

static inline int
put_c(Buf *b, char c)
{
    RESERVE(b, 1);
    b->data[b->len++] = c;
    return OK;
}

#define PUT_LIT(b, s) put_bytes((b), (s), sizeof(s) - 1)

static inline void
wr_i32(char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (char)(u & 0xFF);
    p[1] = (char)((u >> 8) & 0xFF);
    p[2] = (char)((u >> 16) & 0xFF);
    p[3] = (char)((u >> 24) & 0xFF);
}

static inline void
wr_u64(char *p, uint64_t u)
{
    for (int k = 0; k < 8; k++)
        p[k] = (char)((u >> (8 * k)) & 0xFF);
}

static inline int
put_i32(Buf *b, int32_t v)
{
    RESERVE(b, 4);
    wr_i32(b->data + b->len, v);
    b->len += 4;
    return OK;
}

static inline int
put_u64(Buf *b, uint64_t v)
{
    RESERVE(b, 8);
    wr_u64(b->data + b->len, v);
    b->len += 8;
    return OK;
}

/* ------------------------------------------------------------------------
 * Reading little-endian BSON numbers */

static inline uint32_t
rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int32_t
rd_i32(const uint8_t *p)
{
    return (int32_t)rd_u32(p);
}

static inline uint64_t
rd_u64(const uint8_t *p)
{
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

static inline double
rd_dbl(const uint8_t *p)
{
    uint64_t u = rd_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#define CANONICAL_NAN 0x7FF8000000000000ULL
#define BITS_INF 0x7FF0000000000000ULL
#define BITS_NEG_INF 0xFFF0000000000000ULL

/* ------------------------------------------------------------------------
 * Walking a document: the checks of bsonwalk.iter_elements, stricter where that is simpler
 * (a string must end in its NUL, lengths must be plausible); anything odd is NOPE. */

typedef struct {
    const uint8_t *buf;
    Py_ssize_t pos;
    Py_ssize_t end;  /* position of the document's terminating NUL */
} Walk;

typedef struct {
    uint8_t t;
    const uint8_t *name;
    Py_ssize_t nlen;
    Py_ssize_t vs, ve;
} Elem;

/* The document starting at `start` must fill exactly [start, stop). */
static int
walk_init(Walk *w, const uint8_t *buf, Py_ssize_t start, Py_ssize_t stop)
{
    if (stop - start < 5 || rd_i32(buf + start) != stop - start || buf[stop - 1] != 0)
        return NOPE;
    w->buf = buf;
    w->pos = start + 4;
    w->end = stop - 1;
    return OK;
}

/* W_ELEM: an element was read into *e; 0: the end of the document; NOPE: malformed. */
static int
walk_next(Walk *w, Elem *e)
{
    const uint8_t *buf = w->buf;
    Py_ssize_t pos = w->pos, end = w->end;
    if (pos >= end)
        return pos == end ? 0 : NOPE;
    uint8_t t = buf[pos];
    const uint8_t *name = buf + pos + 1;
    const uint8_t *nul = memchr(name, 0, (size_t)(end - pos - 1));
    if (nul == NULL)
        return NOPE;
    Py_ssize_t vs = (nul - buf) + 1;
    Py_ssize_t room = end - vs;  /* bytes the value may take */
    Py_ssize_t ve;
    int32_t n;
    switch (t) {
    case T_DOUBLE: case T_DATE: case T_INT64: case T_TIMESTAMP:
        ve = vs + 8; break;
    case T_INT32:
        ve = vs + 4; break;
    case T_OID:
        ve = vs + 12; break;
    case T_DECIMAL:
        ve = vs + 16; break;
    case T_BOOL:
        ve = vs + 1; break;
    case T_NULL: case T_UNDEFINED: case T_MINKEY: case T_MAXKEY:
        ve = vs; break;
    case T_STRING: case T_CODE: case T_SYMBOL:
        if (room < 5)
            return NOPE;
        n = rd_i32(buf + vs);
        if (n < 1 || n > room - 4)
            return NOPE;
        ve = vs + 4 + n;
        if (buf[ve - 1] != 0)
            return NOPE;
        break;
    case T_DOC: case T_ARRAY:
        if (room < 5)
            return NOPE;
        n = rd_i32(buf + vs);
        if (n < 5 || n > room)
            return NOPE;
        ve = vs + n;
        break;
    case T_CODE_W_SCOPE:
        if (room < 14)
            return NOPE;
        n = rd_i32(buf + vs);
        if (n < 14 || n > room)
            return NOPE;
        ve = vs + n;
        break;
    case T_BINARY:
        if (room < 5)
            return NOPE;
        n = rd_i32(buf + vs);
        if (n < 0 || n > room - 5)
            return NOPE;
        ve = vs + 5 + n;
        break;
    case T_REGEX: {
        const uint8_t *p1 = memchr(buf + vs, 0, (size_t)room);
        if (p1 == NULL)
            return NOPE;
        const uint8_t *p2 = memchr(p1 + 1, 0, (size_t)(end - (p1 + 1 - buf)));
        if (p2 == NULL)
            return NOPE;
        ve = (p2 - buf) + 1;
        break;
    }
    case T_DBPOINTER:
        if (room < 4 + 1 + 12)
            return NOPE;
        n = rd_i32(buf + vs);
        if (n < 1 || n > room - 4 - 12 || buf[vs + 4 + n - 1] != 0)
            return NOPE;
        ve = vs + 4 + n + 12;
        break;
    default:
        return NOPE;
    }
    if (ve > end)
        return NOPE;
    e->t = t;
    e->name = name;
    e->nlen = nul - name;
    e->vs = vs;
    e->ve = ve;
    w->pos = ve;
    return W_ELEM;
}

/* ------------------------------------------------------------------------
 * Text of plain values (cells.py) */

static const char HEX[] = "0123456789abcdef";

/* decimal digits of v into the end of tmp[0..len); returns the start */
static inline char *
u64_digits(uint64_t v, char *tmp_end)
{
    char *p = tmp_end;
    do {
        *--p = (char)('0' + (v % 10));
        v /= 10;
    } while (v);
    return p;
}

static int
put_i64(Buf *b, int64_t v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = u64_digits(u, end);
    if (v < 0)
        *--p = '-';
    return put_bytes(b, p, (size_t)(end - p));
}

static inline int
put_hex(Buf *b, const uint8_t *p, size_t n, int reversed)
{
    RESERVE(b, 2 * n);
    char *o = b->data + b->len;
    for (size_t k = 0; k < n; k++) {
        uint8_t c = reversed ? p[n - 1 - k] : p[k];
        o[2 * k] = HEX[c >> 4];
        o[2 * k + 1] = HEX[c & 15];
    }
    b->len += 2 * n;
    return OK;
}

/* repr(float) for a finite or infinite double, or NaN ("nan") */
static int
put_double_repr(Buf *b, double v)
{
    char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL)
        return ERR;
    int r = put_bytes(b, s, strlen(s));
    PyMem_Free(s);
    return r;
}

static inline int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* days since 1970-01-01 -> proleptic Gregorian y/m/d (H. Hinnant's civil_from_days) */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static inline void
two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* cells.iso_from_ms, for MIN_ISO_MS <= ms <= MAX_ISO_MS: exactly 24 characters */
static void
iso_text(int64_t ms, char *o)
{
    int64_t days = floor_div(ms, 86400000LL);
    int64_t rem = ms - days * 86400000LL;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int hh = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), ss = (int)(rem / 1000 % 60), mss = (int)(rem % 1000);
    o[0] = (char)('0' + y / 1000);
    o[1] = (char)('0' + y / 100 % 10);
    o[2] = (char)('0' + y / 10 % 10);
    o[3] = (char)('0' + y % 10);
    o[4] = '-';
    two(o + 5, m);
    o[7] = '-';
    two(o + 8, d);
    o[10] = 'T';
    two(o + 11, hh);
    o[13] = ':';
    two(o + 14, mi);
    o[16] = ':';
    two(o + 17, ss);
    o[19] = '.';
    o[20] = (char)('0' + mss / 100);
    two(o + 21, mss % 100);
    o[23] = 'Z';
}

/* cells.decimal_text: the text of a Decimal128, or 0 when only $decimalBits holds these bits.
 * out must have room for 64 characters. */
static int
decimal_text(const uint8_t *p, char *out, size_t *n)
{
    uint64_t low = rd_u64(p), high = rd_u64(p + 8);
    if (((high >> 61) & 3) != 3) {
        unsigned __int128 coef = ((unsigned __int128)(high & 0x1FFFFFFFFFFFFULL) << 64) | low;
        const unsigned __int128 max = (unsigned __int128)1000000000000000000ULL * 10000000000000000ULL - 1;  /* 10**34 - 1 */
        if (coef > max)
            return 0;
        int sign = (int)(high >> 63);
        int exp = (int)((high >> 49) & 0x3FFF) - 6176;
        char tmp[48];
        char *tend = tmp + sizeof tmp, *digits;
        if (coef >> 64) {
            const uint64_t e19 = 10000000000000000000ULL;
            uint64_t hi = (uint64_t)(coef / e19), lo = (uint64_t)(coef % e19);
            char *q = u64_digits(lo, tend);
            while (q > tend - 19)
                *--q = '0';
            digits = u64_digits(hi, q);
        }
        else {
            digits = u64_digits((uint64_t)coef, tend);
        }
        int nd = (int)(tend - digits);
        /* _decimal_to_string: IEEE 754 to-scientific-string, as Python's Decimal.__str__ */
        int leftdigits = exp + nd;
        int dotplace = (exp <= 0 && leftdigits > -6) ? leftdigits : 1;
        char *o = out;
        if (sign)
            *o++ = '-';
        if (dotplace <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int k = 0; k < -dotplace; k++)
                *o++ = '0';
            memcpy(o, digits, nd);
            o += nd;
        }
        else if (dotplace >= nd) {
            memcpy(o, digits, nd);
            o += nd;
            for (int k = 0; k < dotplace - nd; k++)
                *o++ = '0';
        }
        else {
            memcpy(o, digits, dotplace);
            o += dotplace;
            *o++ = '.';
            memcpy(o, digits + dotplace, nd - dotplace);
            o += nd - dotplace;
        }
        if (leftdigits != dotplace) {
            int e = leftdigits - dotplace;
            *o++ = 'E';
            *o++ = e < 0 ? '-' : '+';
            char etmp[12];
            char *ee = u64_digits((uint64_t)(e < 0 ? -e : e), etmp + sizeof etmp);
            memcpy(o, ee, (size_t)(etmp + sizeof etmp - ee));
            o += etmp + sizeof etmp - ee;
        }
        *n = (size_t)(o - out);
        return 1;
    }
    /* special forms: only the canonical bits of these three read back from their text */
    const char *s = NULL;
    if (low == 0) {
        if (high == 0x7C00000000000000ULL)
            s = "NaN";
        else if (high == 0x7800000000000000ULL)
            s = "Infinity";
        else if (high == 0xF800000000000000ULL)
            s = "-Infinity";
    }
    if (s == NULL)
        return 0;
    *n = strlen(s);
    memcpy(out, s, *n);
    return 1;
}

/* ------------------------------------------------------------------------
 * Raw BSON -> the JSON dialect (dialect.value_to_obj + dumps) */

/* bytes json.encoder.encode_basestring escapes: control characters, '"' and '\' */
static uint8_t JSON_ESC[256];

static int
put_json_str(Buf *b, const uint8_t *s, size_t n)
{
    RESERVE(b, n + 2);
    b->data[b->len++] = '"';
    size_t start = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t c = s[k];
        if (!JSON_ESC[c])
            continue;
        TRY(put_bytes(b, s + start, k - start));
        start = k + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = HEX[c >> 4]; esc[5] = HEX[c & 15];
            en = 6;
        }
        TRY(put_bytes(b, esc, en));
    }
    TRY(put_bytes(b, s + start, n - start));
    return put_c(b, '"');
}

static int jw_doc(Buf *b, const uint8_t *buf, Py_ssize_t start, Py_ssize_t stop, int is_array, int depth);

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
put_base64(Buf *b, const uint8_t *p, size_t n)
{
    RESERVE(b, (n + 2) / 3 * 4);
    char *o = b->data + b->len;
    size_t k = 0;
    for (; k + 3 <= n; k += 3) {
        uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8 | p[k + 2];
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - k == 1) {
        uint32_t v = (uint32_t)p[k] << 16;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    }
    else if (n - k == 2) {
        uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    return OK;
}

/* The double as the dialect writes it: a bare number, or a wrapper for NaN and infinities. */
static int
jw_double(Buf *b, const uint8_t *p)
{
    double v = rd_dbl(p);
    if (isfinite(v))
        return put_double_repr(b, v);
    uint64_t bits = rd_u64(p);
    if (bits == CANONICAL_NAN)
        return PUT_LIT(b, "{\"$numberDouble\":\"NaN\"}");
    if (bits == BITS_INF)
        return PUT_LIT(b, "{\"$numberDouble\":\"Infinity\"}");
    if (bits == BITS_NEG_INF)
        return PUT_LIT(b, "{\"$numberDouble\":\"-Infinity\"}");
    TRY(PUT_LIT(b, "{\"$doubleBits\":\""));
    TRY(put_hex(b, p, 8, 1));
    return PUT_LIT(b, "\"}");
}

/* One value (type t at buf[vs:ve], as walk_next found it) in the JSON dialect. */
static int
jw_value(Buf *b, uint8_t t, const uint8_t *buf, Py_ssize_t vs, Py_ssize_t ve, int depth)
{
    switch (t) {
    case T_STRING:
        return put_json_str(b, buf + vs + 4, (size_t)(ve - vs - 5));
    case T_INT32:
        return put_i64(b, rd_i32(buf + vs));
    case T_DOUBLE:
        return jw_double(b, buf + vs);
    case T_DOC:
    case T_ARRAY:
        return jw_doc(b, buf, vs, ve, t == T_ARRAY, depth + 1);
    case T_BOOL:
        if (buf[vs] > 1)
            return NOPE;
        return buf[vs] ? PUT_LIT(b, "true") : PUT_LIT(b, "false");
    case T_NULL:
        return PUT_LIT(b, "null");
    case T_INT64:
        TRY(PUT_LIT(b, "{\"$numberLong\":\""));
        TRY(put_i64(b, (int64_t)rd_u64(buf + vs)));
        return PUT_LIT(b, "\"}");
    case T_DATE: {
        int64_t ms = (int64_t)rd_u64(buf + vs);
        if (MIN_ISO_MS <= ms && ms <= MAX_ISO_MS) {
            char iso[24];
            iso_text(ms, iso);
            TRY(PUT_LIT(b, "{\"$date\":\""));
            TRY(put_bytes(b, iso, 24));
            return PUT_LIT(b, "\"}");
        }
        TRY(PUT_LIT(b, "{\"$date\":{\"$numberLong\":\""));
        TRY(put_i64(b, ms));
        return PUT_LIT(b, "\"}}");
    }
    case T_OID:
        TRY(PUT_LIT(b, "{\"$oid\":\""));
        TRY(put_hex(b, buf + vs, 12, 0));
        return PUT_LIT(b, "\"}");
    case T_DECIMAL: {
        char text[64];
        size_t n;
        if (decimal_text(buf + vs, text, &n)) {
            TRY(PUT_LIT(b, "{\"$numberDecimal\":\""));
            TRY(put_bytes(b, text, n));
            return PUT_LIT(b, "\"}");
        }
        TRY(PUT_LIT(b, "{\"$decimalBits\":\""));
        TRY(put_hex(b, buf + vs, 16, 1));
        return PUT_LIT(b, "\"}");
    }
    case T_BINARY: {
        int32_t n = rd_i32(buf + vs);
        uint8_t sub = buf[vs + 4];
        const uint8_t *data = buf + vs + 5;
        if (sub == 2) {  /* old binary: the payload carries its own length */
            if (n < 4 || rd_i32(data) != n - 4)
                return NOPE;
            data += 4;
            n -= 4;
        }
        TRY(PUT_LIT(b, "{\"$binary\":{\"base64\":\""));
        TRY(put_base64(b, data, (size_t)n));
        TRY(PUT_LIT(b, "\",\"subType\":\""));
        TRY(put_hex(b, &sub, 1, 0));
        return PUT_LIT(b, "\"}}");
    }
    case T_TIMESTAMP:
        TRY(PUT_LIT(b, "{\"$timestamp\":{\"t\":"));
        TRY(put_i64(b, rd_u32(buf + vs + 4)));
        TRY(PUT_LIT(b, ",\"i\":"));
        TRY(put_i64(b, rd_u32(buf + vs)));
        return PUT_LIT(b, "}}");
    case T_REGEX: {
        const uint8_t *p1 = memchr(buf + vs, 0, (size_t)(ve - vs));  /* walk_next found it */
        Py_ssize_t pend = p1 - buf;
        TRY(PUT_LIT(b, "{\"$regularExpression\":{\"pattern\":"));
        TRY(put_json_str(b, buf + vs, (size_t)(pend - vs)));
        TRY(PUT_LIT(b, ",\"options\":"));
        TRY(put_json_str(b, buf + pend + 1, (size_t)(ve - 1 - pend - 1)));
        return PUT_LIT(b, "}}");
    }
    case T_CODE:
        TRY(PUT_LIT(b, "{\"$code\":"));
        TRY(put_json_str(b, buf + vs + 4, (size_t)(ve - vs - 5)));
        return put_c(b, '}');
    case T_SYMBOL:
        TRY(PUT_LIT(b, "{\"$symbol\":"));
        TRY(put_json_str(b, buf + vs + 4, (size_t)(ve - vs - 5)));
        return put_c(b, '}');
    case T_CODE_W_SCOPE: {
        /* int32 total, string code, document scope: the parts must fill the total exactly */
        int32_t total = rd_i32(buf + vs);
        int32_t clen = rd_i32(buf + vs + 4);
        if (total != ve - vs || clen < 1 || clen > total - 8 - 5 || buf[vs + 8 + clen - 1] != 0)
            return NOPE;
        Py_ssize_t scope = vs + 8 + clen;
        TRY(PUT_LIT(b, "{\"$code\":"));
        TRY(put_json_str(b, buf + vs + 8, (size_t)(clen - 1)));
        TRY(PUT_LIT(b, ",\"$scope\":"));
        TRY(jw_doc(b, buf, scope, ve, 0, depth + 1));
        return put_c(b, '}');
    }
    case T_DBPOINTER: {
        int32_t n = rd_i32(buf + vs);
        TRY(PUT_LIT(b, "{\"$dbPointer\":{\"$ref\":"));
        TRY(put_json_str(b, buf + vs + 4, (size_t)(n - 1)));
        TRY(PUT_LIT(b, ",\"$id\":{\"$oid\":\""));
        TRY(put_hex(b, buf + vs + 4 + n, 12, 0));
        return PUT_LIT(b, "\"}}}");
    }
    case T_UNDEFINED:
        return PUT_LIT(b, "{\"$undefined\":true}");
    case T_MINKEY:
        return PUT_LIT(b, "{\"$minKey\":1}");
    case T_MAXKEY:
        return PUT_LIT(b, "{\"$maxKey\":1}");
    }
    return NOPE;
}

static int
name_cmp(const void *a, const void *b)
{
    const Elem *x = *(const Elem *const *)a, *y = *(const Elem *const *)b;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    return memcmp(x->name, y->name, (size_t)x->nlen);
}

/* Whether two elements share a name (dict(pairs) would lose one). */
static int
has_duplicates(Elem *es, size_t n, int *dup)
{
    *dup = 0;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (es[i].nlen == es[j].nlen && memcmp(es[i].name, es[j].name, (size_t)es[i].nlen) == 0) {
                    *dup = 1;
                    return OK;
                }
        return OK;
    }
    Elem **ptrs = PyMem_Malloc(n * sizeof(Elem *));
    if (ptrs == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &es[i];
    qsort(ptrs, n, sizeof(Elem *), name_cmp);
    for (size_t i = 1; i < n; i++)
        if (name_cmp(&ptrs[i - 1], &ptrs[i]) == 0) {
            *dup = 1;
            break;
        }
    PyMem_Free(ptrs);
    return OK;
}

/* dialect._doc_to_obj / _array_to_obj, written out: {"k":v,...}, [v,...], or the $fields /
 * $arrayFields form for names starting with '$', repeated names, array names not 0, 1, 2, ... */
static int
jw_doc_elems(Buf *b, const uint8_t *buf, Elem *es, size_t n, int is_array, int depth)
{
    int plain = 1;
    if (is_array) {
        for (size_t k = 0; k < n && plain; k++) {
            char tmp[24];
            char *tend = tmp + sizeof tmp;
            char *d = u64_digits(k, tend);
            if (es[k].nlen != tend - d || memcmp(es[k].name, d, (size_t)es[k].nlen) != 0)
                plain = 0;
        }
    }
    else {
        for (size_t k = 0; k < n; k++)
            if (es[k].nlen > 0 && es[k].name[0] == '$') {
                plain = 0;
                break;
            }
        if (plain) {
            int dup;
            TRY(has_duplicates(es, n, &dup));
            plain = !dup;
        }
    }
    if (plain) {
        TRY(put_c(b, is_array ? '[' : '{'));
        for (size_t k = 0; k < n; k++) {
            if (k)
                TRY(put_c(b, ','));
            if (!is_array) {
                TRY(put_json_str(b, es[k].name, (size_t)es[k].nlen));
                TRY(put_c(b, ':'));
            }
            TRY(jw_value(b, es[k].t, buf, es[k].vs, es[k].ve, depth));
        }
        return put_c(b, is_array ? ']' : '}');
    }
    TRY(is_array ? PUT_LIT(b, "{\"$arrayFields\":[") : PUT_LIT(b, "{\"$fields\":["));
    for (size_t k = 0; k < n; k++) {
        TRY(k ? PUT_LIT(b, ",[") : put_c(b, '['));
        TRY(put_json_str(b, es[k].name, (size_t)es[k].nlen));
        TRY(put_c(b, ','));
        TRY(jw_value(b, es[k].t, buf, es[k].vs, es[k].ve, depth));
        TRY(put_c(b, ']'));
    }
    return PUT_LIT(b, "]}");
}

static int
jw_doc(Buf *b, const uint8_t *buf, Py_ssize_t start, Py_ssize_t stop, int is_array, int depth)
{
    if (depth > MAX_DEPTH)
        return NOPE;
    Walk w;
    TRY(walk_init(&w, buf, start, stop));
    Elem stack[16];
    Elem *es = stack;
    size_t n = 0, cap = 16;
    int r;
    Elem e;
    while ((r = walk_next(&w, &e)) == W_ELEM) {
        if (n == cap) {
            size_t ncap = cap * 2;
            Elem *p = es == stack ? PyMem_Malloc(ncap * sizeof(Elem)) : PyMem_Realloc(es, ncap * sizeof(Elem));
            if (p == NULL) {
                if (es != stack)
                    PyMem_Free(es);
                PyErr_NoMemory();
                return ERR;
            }
            if (es == stack)
                memcpy(p, stack, sizeof stack);
            es = p;
            cap = ncap;
        }
        es[n++] = e;
    }
    if (r == 0)
        r = jw_doc_elems(b, buf, es, n, is_array, depth);
    if (es != stack)
        PyMem_Free(es);
    return r;
}

/* ------------------------------------------------------------------------
 * Python strings from bytes */

static PyObject *EMPTY;     /* "" */
static PyObject *TRUE_S;    /* "true" */
static PyObject *FALSE_S;   /* "false" */

static PyObject *
ascii_str(const char *p, size_t n)
{
    PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, n);
    return s;
}

/* str from UTF-8; *r = NOPE (and NULL) when the bytes are not valid UTF-8 (Python's strict decoder) */
static PyObject *
utf8_str(const char *p, size_t n, int *r)
{
    PyObject *s = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, NULL);
    if (s == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            *r = NOPE;
        }
        else {
            *r = ERR;
        }
    }
    return s;
}

/* ------------------------------------------------------------------------
 * shape_key: the schema pass */

static PyObject *
sp_shape_key(PyObject *mod, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg))
        Py_RETURN_NONE;
    const uint8_t *buf = (const uint8_t *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Walk w;
    if (walk_init(&w, buf, 0, size) != OK)
        Py_RETURN_NONE;
    char stack[1024];
    Buf b;
    BUF_INIT(b, stack);
    Elem e;
    int r;
    while ((r = walk_next(&w, &e)) == W_ELEM) {
        uint8_t t = e.t;
        if (t == T_DATE) {
            int64_t ms = (int64_t)rd_u64(buf + e.vs);
            if (ms < MIN_ISO_MS || ms > MAX_ISO_MS)
                t = SHAPE_DATE_AS_JSON;
        }
        if ((r = put_c(&b, (char)t)) != OK || (r = put_bytes(&b, e.name, (size_t)e.nlen + 1)) != OK)
            break;
    }
    PyObject *out = NULL;
    if (r == 0)
        out = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
    else if (r == NOPE)
        out = Py_NewRef(Py_None);
    buf_free(&b);
    return out;
}

/* ------------------------------------------------------------------------
 * Column names (shared by the encoder and the decoder) */

typedef struct {
    Py_ssize_t n;
    char *names;           /* all names, back to back */
    Py_ssize_t *offsets;   /* n + 1 offsets into names */
    Py_ssize_t *table;     /* open addressing: column index or -1 */
    size_t mask;
} Columns;

static uint64_t
fnv1a(const uint8_t *p, Py_ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        h ^= p[k];
        h *= 1099511628211ULL;
    }
    return h;
}

static void
columns_free(Columns *c)
{
    PyMem_Free(c->names);
    PyMem_Free(c->offsets);
    PyMem_Free(c->table);
    c->names = NULL;
    c->offsets = NULL;
    c->table = NULL;
}

/* names: a list of bytes (UTF-8 names without NUL, distinct) */
static int
columns_init(Columns *c, PyObject *names)
{
    memset(c, 0, sizeof *c);
    if (!PyList_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "names must be a list of bytes");
        return ERR;
    }
    Py_ssize_t n = PyList_GET_SIZE(names), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyList_GET_ITEM(names, i);
        if (!PyBytes_Check(x) || memchr(PyBytes_AS_STRING(x), 0, (size_t)PyBytes_GET_SIZE(x)) != NULL) {
            PyErr_SetString(PyExc_TypeError, "names must be a list of bytes without NUL");
            return ERR;
        }
        total += PyBytes_GET_SIZE(x);
    }
    size_t slots = 8;
    while (slots < (size_t)n * 2)
        slots *= 2;
    c->n = n;
    c->names = PyMem_Malloc((size_t)total + 1);
    c->offsets = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    c->table = PyMem_Malloc(sizeof(Py_ssize_t) * slots);
    if (c->names == NULL || c->offsets == NULL || c->table == NULL) {
        columns_free(c);
        PyErr_NoMemory();
        return ERR;
    }
    c->mask = slots - 1;
    for (size_t s = 0; s < slots; s++)
        c->table[s] = -1;
    Py_ssize_t off = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyList_GET_ITEM(names, i);
        Py_ssize_t len = PyBytes_GET_SIZE(x);
        memcpy(c->names + off, PyBytes_AS_STRING(x), (size_t)len);
        c->offsets[i] = off;
        off += len;
        size_t s = (size_t)fnv1a((const uint8_t *)c->names + c->offsets[i], len) & c->mask;
        while (c->table[s] >= 0)
            s = (s + 1) & c->mask;
        c->table[s] = i;
    }
    c->offsets[n] = off;
    return OK;
}

static inline int
column_is(const Columns *c, Py_ssize_t i, const uint8_t *name, Py_ssize_t nlen)
{
    return c->offsets[i + 1] - c->offsets[i] == nlen && memcmp(c->names + c->offsets[i], name, (size_t)nlen) == 0;
}

/* the column of a field name, or -1; `hint` is tried first (the column after the previous field's) */
static Py_ssize_t
column_of(const Columns *c, const uint8_t *name, Py_ssize_t nlen, Py_ssize_t hint)
{
    if (hint < c->n && column_is(c, hint, name, nlen))
        return hint;
    size_t s = (size_t)fnv1a(name, nlen) & c->mask;
    for (;;) {
        Py_ssize_t i = c->table[s];
        if (i < 0)
            return -1;
        if (column_is(c, i, name, nlen))
            return i;
        s = (s + 1) & c->mask;
    }
}

/* ------------------------------------------------------------------------
 * RowEncoder */

typedef struct {
    PyObject_HEAD
    Columns cols;
    uint8_t *types;  /* per column: its cell type (C_JSON or the BSON type of the plain type) */
} EncoderObject;

static int
valid_cell_type(int t)
{
    switch (t) {
    case C_JSON: case T_STRING: case T_INT32: case T_INT64: case T_DOUBLE: case T_BOOL: case T_DATE:
    case T_OID: case T_DECIMAL: case T_NULL:
        return 1;
    }
    return 0;
}

static const char *
cell_type_name(int t)
{
    switch (t) {
    case T_STRING: return "string";
    case T_INT32: return "int32";
    case T_INT64: return "int64";
    case T_DOUBLE: return "double";
    case T_BOOL: return "bool";
    case T_DATE: return "date";
    case T_OID: return "objectId";
    case T_DECIMAL: return "decimal";
    case T_NULL: return "null";
    }
    return "json";
}

static PyObject *
Encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *names;
    Py_buffer types;
    static char *kwlist[] = {"names", "types", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oy*", kwlist, &names, &types))
        return NULL;
    EncoderObject *self = (EncoderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&types);
        return NULL;
    }
    if (columns_init(&self->cols, names) < 0)
        goto fail;
    if (types.len != self->cols.n) {
        PyErr_SetString(PyExc_ValueError, "one type per column");
        goto fail;
    }
    self->types = PyMem_Malloc((size_t)types.len + 1);
    if (self->types == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(self->types, types.buf, (size_t)types.len);
    for (Py_ssize_t i = 0; i < types.len; i++)
        if (!valid_cell_type(self->types[i])) {
            PyErr_SetString(PyExc_ValueError, "unknown cell type code");
            goto fail;
        }
    PyBuffer_Release(&types);
    return (PyObject *)self;
fail:
    PyBuffer_Release(&types);
    Py_DECREF(self);
    return NULL;
}

static void
Encoder_dealloc(EncoderObject *self)
{
    columns_free(&self->cols);
    PyMem_Free(self->types);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A JSON cell: the value in the dialect, as str. */
static PyObject *
json_cell(uint8_t t, const uint8_t *buf, Py_ssize_t vs, Py_ssize_t ve, int *r)
{
    char stack[2048];
    Buf b;
    BUF_INIT(b, stack);
    PyObject *s = NULL;
    *r = jw_value(&b, t, buf, vs, ve, 0);
    if (*r == OK)
        s = utf8_str(b.data, b.len, r);
    buf_free(&b);
    return s;
}

/* The cell of one value for a column of plain type `ctype` (rows._exact_cell); *cell_type gets its
 * cell type (C_JSON when the value has no plain text). */
static PyObject *
plain_cell(uint8_t t, const uint8_t *buf, Py_ssize_t vs, Py_ssize_t ve, int *cell_type, int *r)
{
    char tmp[64];
    size_t n;
    *cell_type = t;
    *r = OK;
    switch (t) {
    case T_STRING: {
        const uint8_t *s = buf + vs + 4;
        size_t len = (size_t)(ve - vs - 5);
        if (len && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\'' ||
                    s[0] == '\t' || s[0] == '\r')) {  /* cells.guard */
            char stack[512];
            Buf b;
            BUF_INIT(b, stack);
            PyObject *out = NULL;
            if ((*r = put_c(&b, '\'')) == OK && (*r = put_bytes(&b, s, len)) == OK)
                out = utf8_str(b.data, b.len, r);
            buf_free(&b);
            return out;
        }
        return utf8_str((const char *)s, len, r);
    }
    case T_INT32:
    case T_INT64: {
        int64_t v = t == T_INT32 ? rd_i32(buf + vs) : (int64_t)rd_u64(buf + vs);
        char *end = tmp + sizeof tmp;
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        char *p = u64_digits(u, end);
        if (v < 0)
            *--p = '-';
        return ascii_str(p, (size_t)(end - p));
    }
    case T_DOUBLE: {
        double v = rd_dbl(buf + vs);
        if (v != v && rd_u64(buf + vs) != CANONICAL_NAN)
            break;  /* a NaN with payload or sign: only $doubleBits holds it */
        char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (s == NULL) {
            *r = ERR;
            return NULL;
        }
        PyObject *out = ascii_str(s, strlen(s));
        PyMem_Free(s);
        return out;
    }
    case T_BOOL:
        if (buf[vs] > 1) {
            *r = NOPE;
            return NULL;
        }
        return Py_NewRef(buf[vs] ? TRUE_S : FALSE_S);
    case T_DATE: {
        int64_t ms = (int64_t)rd_u64(buf + vs);
        if (ms < MIN_ISO_MS || ms > MAX_ISO_MS)
            break;
        iso_text(ms, tmp);
        return ascii_str(tmp, 24);
    }
    case T_OID:
        for (int k = 0; k < 12; k++) {
            tmp[2 * k] = HEX[buf[vs + k] >> 4];
            tmp[2 * k + 1] = HEX[buf[vs + k] & 15];
        }
        return ascii_str(tmp, 24);
    case T_DECIMAL:
        if (!decimal_text(buf + vs, tmp, &n))
            break;
        return ascii_str(tmp, n);
    case T_NULL:
        return Py_NewRef(EMPTY);
    }
    *cell_type = C_JSON;
    return json_cell(t, buf, vs, ve, r);
}

/* rows.RowEncoder._meta_text(missing, types, order) */
static int
meta_text(Buf *b, const uint8_t *present, Py_ssize_t ncols, Py_ssize_t nfields,
          const Py_ssize_t *note_col, const int *note_type, Py_ssize_t nnotes,
          const Py_ssize_t *order, int ordered)
{
    int first = 1;
    TRY(put_c(b, '{'));
    if (nfields != ncols) {
        TRY(PUT_LIT(b, "\"missing\":["));
        int any = 0;
        for (Py_ssize_t i = 0; i < ncols; i++)
            if (!present[i]) {
                if (any)
                    TRY(put_c(b, ','));
                TRY(put_i64(b, i));
                any = 1;
            }
        TRY(put_c(b, ']'));
        first = 0;
    }
    if (nnotes) {
        TRY(first ? PUT_LIT(b, "\"types\":{") : PUT_LIT(b, ",\"types\":{"));
        for (Py_ssize_t k = 0; k < nnotes; k++) {
            if (k)
                TRY(put_c(b, ','));
            TRY(put_c(b, '"'));
            TRY(put_i64(b, note_col[k]));
            TRY(PUT_LIT(b, "\":\""));
            const char *name = cell_type_name(note_type[k]);
            TRY(put_bytes(b, name, strlen(name)));
            TRY(put_c(b, '"'));
        }
        TRY(put_c(b, '}'));
        first = 0;
    }
    if (!ordered) {
        TRY(first ? PUT_LIT(b, "\"order\":[") : PUT_LIT(b, ",\"order\":["));
        for (Py_ssize_t k = 0; k < nfields; k++) {
            if (k)
                TRY(put_c(b, ','));
            TRY(put_i64(b, order[k]));
        }
        TRY(put_c(b, ']'));
    }
    return put_c(b, '}');
}

static PyObject *
Encoder_encode(EncoderObject *self, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg))
        Py_RETURN_NONE;
    const uint8_t *buf = (const uint8_t *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    const Columns *cols = &self->cols;
    Py_ssize_t n = cols->n;
    Walk w;
    if (walk_init(&w, buf, 0, size) != OK)
        Py_RETURN_NONE;

    /* per column: present?; per field: its column; per type note: column and cell type */
    uint8_t present_stack[256];
    Py_ssize_t order_stack[256], note_col_stack[256];
    int note_type_stack[256];
    uint8_t *present = present_stack;
    Py_ssize_t *order = order_stack, *note_col = note_col_stack;
    int *note_type = note_type_stack;
    if (n > 256) {
        present = PyMem_Malloc((size_t)n);
        order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
        note_col = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
        note_type = PyMem_Malloc(sizeof(int) * (size_t)n);
        if (present == NULL || order == NULL || note_col == NULL || note_type == NULL) {
            PyErr_NoMemory();
            goto scratch_fail;
        }
    }
    memset(present, 0, (size_t)n);

    PyObject *cells = PyList_New(n + 1);  /* NULL items until set; the list owns what it holds */
    if (cells == NULL)
        goto scratch_fail;
    Py_ssize_t nfields = 0, nnotes = 0, last = -1;
    int ordered = 1, r;
    Elem e;
    while ((r = walk_next(&w, &e)) == W_ELEM) {
        Py_ssize_t i = column_of(cols, e.name, e.nlen, last + 1);
        if (i < 0 || present[i]) {  /* a field without column, or a repeated name: a whole-document row */
            r = NOPE;
            break;
        }
        present[i] = 1;
        order[nfields++] = i;
        if (i < last)
            ordered = 0;
        last = i;
        PyObject *cell;
        int ctype = self->types[i];
        if (ctype == C_JSON) {
            cell = json_cell(e.t, buf, e.vs, e.ve, &r);
        }
        else {
            int got;
            cell = plain_cell(e.t, buf, e.vs, e.ve, &got, &r);
            if (cell != NULL && got != ctype) {
                note_col[nnotes] = i;
                note_type[nnotes++] = got;
            }
        }
        if (cell == NULL) {
            if (r == OK)
                r = ERR;  /* e.g. MemoryError while making the str */
            break;
        }
        PyList_SET_ITEM(cells, i, cell);
    }
    if (r != 0)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!present[i])
            PyList_SET_ITEM(cells, i, Py_NewRef(EMPTY));
    PyObject *meta;
    if (nfields == n && ordered && nnotes == 0) {
        meta = Py_NewRef(EMPTY);
    }
    else {
        char stack[512];
        Buf b;
        BUF_INIT(b, stack);
        r = meta_text(&b, present, n, nfields, note_col, note_type, nnotes, order, ordered);
        meta = r == OK ? ascii_str(b.data, b.len) : NULL;
        buf_free(&b);
        if (meta == NULL) {
            r = ERR;
            goto fail;
        }
    }
    PyList_SET_ITEM(cells, n, meta);
    if (present != present_stack) {
        PyMem_Free(present);
        PyMem_Free(order);
        PyMem_Free(note_col);
        PyMem_Free(note_type);
    }
    return cells;

fail:
    Py_DECREF(cells);
    if (present != present_stack) {
        PyMem_Free(present);
        PyMem_Free(order);
        PyMem_Free(note_col);
        PyMem_Free(note_type);
    }
    if (r == ERR)
        return NULL;
    Py_RETURN_NONE;

scratch_fail:
    if (present != present_stack) {
        PyMem_Free(present);
        PyMem_Free(order);
        PyMem_Free(note_col);
        PyMem_Free(note_type);
    }
    return NULL;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_O,
     "encode(raw: bytes) -> list[str] | None: the CSV row of a raw BSON document, or None (not handled here)."},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "backup_core.codec._speedups.RowEncoder",
    .tp_basicsize = sizeof(EncoderObject),
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RowEncoder(names: list[bytes], types: bytes): rows of one schema (see rows.RowEncoder).",
    .tp_methods = Encoder_methods,
    .tp_new = Encoder_new,
};

/* ------------------------------------------------------------------------
 * Cell text -> BSON value bytes (cells.CellType.bytes_from_text, canonical texts only) */

static inline int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* -?[0-9]+ within [lo, hi] (what int(text) reads, without white space, '+' or '_') */
static int
parse_int(const char *s, Py_ssize_t n, int64_t lo, int64_t hi, int64_t *out)
{
    Py_ssize_t k = 0;
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        k = 1;
    }
    if (k == n || n - k > 19)
        return NOPE;
    uint64_t v = 0;
    for (; k < n; k++) {
        if (!is_digit(s[k]))
            return NOPE;
        v = v * 10 + (uint64_t)(s[k] - '0');
    }
    /* at most 19 digits: v < 10**19 < 2**64 */
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return NOPE;
        int64_t x = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        if (x < lo)
            return NOPE;
        *out = x;
    }
    else {
        if (v > (uint64_t)INT64_MAX || (int64_t)v > hi)
            return NOPE;
        *out = (int64_t)v;
    }
    return OK;
}

/* float(text) for the texts repr() writes: -?digits[.digits][e[+-]digits], nan, inf, -inf */
static int
parse_double(const char *s, Py_ssize_t n, double *out)
{
    char tmp[80];
    if (n <= 0 || n >= (Py_ssize_t)sizeof tmp)
        return NOPE;
    if ((n == 3 && memcmp(s, "nan", 3) == 0) || (n == 3 && memcmp(s, "inf", 3) == 0) ||
        (n == 4 && memcmp(s, "-inf", 4) == 0)) {
        /* as float(): a NaN without sign (the canonical bits), the infinities */
    }
    else {
        Py_ssize_t k = 0, digits = 0;
        if (s[k] == '-')
            k++;
        while (k < n && is_digit(s[k])) {
            k++;
            digits++;
        }
        if (k < n && s[k] == '.') {
            k++;
            while (k < n && is_digit(s[k])) {
                k++;
                digits++;
            }
        }
        if (!digits)
            return NOPE;
        if (k < n && (s[k] == 'e' || s[k] == 'E')) {
            k++;
            if (k < n && (s[k] == '+' || s[k] == '-'))
                k++;
            Py_ssize_t ed = 0;
            while (k < n && is_digit(s[k])) {
                k++;
                ed++;
            }
            if (!ed)
                return NOPE;
        }
        if (k != n)
            return NOPE;
    }
    memcpy(tmp, s, (size_t)n);
    tmp[n] = 0;
    char *end;
    double v = PyOS_string_to_double(tmp, &end, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return ERR;
        PyErr_Clear();
        return NOPE;
    }
    if (end != tmp + n)
        return NOPE;
    *out = v;
    return OK;
}

static inline int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* exactly 2*n hex digits -> n bytes (reversed: the big-endian hex of $doubleBits / $decimalBits) */
static int
parse_hex(const char *s, Py_ssize_t len, uint8_t *out, int n, int reversed)
{
    if (len != 2 * n)
        return NOPE;
    for (int k = 0; k < n; k++) {
        int hi = hexval(s[2 * k]), lo = hexval(s[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return NOPE;
        out[reversed ? n - 1 - k : k] = (uint8_t)(hi << 4 | lo);
    }
    return OK;
}

static inline int
two_digits(const char *p, int *v)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return 0;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return 1;
}

/* YYYY-MM-DDTHH:MM:SS.mmmZ -> ms since the epoch (datetime.fromisoformat reads it alike) */
static int
parse_date(const char *s, Py_ssize_t n, int64_t *out)
{
    if (n != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' ||
        s[23] != 'Z')
        return NOPE;
    int y1, y2, mo, d, h, mi, se, ms1, ms2;
    if (!two_digits(s, &y1) || !two_digits(s + 2, &y2) || !two_digits(s + 5, &mo) || !two_digits(s + 8, &d) ||
        !two_digits(s + 11, &h) || !two_digits(s + 14, &mi) || !two_digits(s + 17, &se) ||
        !two_digits(s + 20, &ms1) || !is_digit(s[22]))
        return NOPE;
    ms2 = ms1 * 10 + (s[22] - '0');
    int y = y1 * 100 + y2;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59)
        return NOPE;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap))
        return NOPE;
    *out = days_from_civil(y, mo, d) * 86400000LL + h * 3600000LL + mi * 60000LL + se * 1000LL + ms2;
    return OK;
}

/* cells.parse_decimal for what its regular expression reads (ASCII digits): the Decimal128 bits */
static int
parse_decimal(const char *s, Py_ssize_t n, uint8_t out[16])
{
    Py_ssize_t k = 0;
    int neg = 0;
    if (k < n && s[k] == '-') {
        neg = 1;
        k++;
    }
    unsigned __int128 coef = 0;
    int nd = 0, whole = 0, frac = 0;
    while (k < n && is_digit(s[k])) {
        if (++nd > 34)
            return NOPE;
        coef = coef * 10 + (unsigned)(s[k++] - '0');
        whole++;
    }
    if (whole == 0)
        return NOPE;
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && is_digit(s[k])) {
            if (++nd > 34)
                return NOPE;
            coef = coef * 10 + (unsigned)(s[k++] - '0');
            frac++;
        }
    }
    int exp = 0;
    if (k < n && s[k] == 'E') {
        k++;
        if (k >= n || (s[k] != '+' && s[k] != '-'))
            return NOPE;
        int eneg = s[k++] == '-';
        int ed = 0;
        while (k < n && is_digit(s[k])) {
            if (++ed > 4)
                return NOPE;
            exp = exp * 10 + (s[k++] - '0');
        }
        if (!ed)
            return NOPE;
        if (eneg)
            exp = -exp;
    }
    if (k != n)
        return NOPE;
    int exponent = exp - frac;
    if (exponent < -6176 || exponent > 6111)
        return NOPE;
    uint64_t low = (uint64_t)coef;
    uint64_t high = (neg ? 1ULL << 63 : 0) | (uint64_t)(exponent + 6176) << 49 | (uint64_t)(coef >> 64);
    wr_u64((char *)out, low);
    wr_u64((char *)out + 8, high);
    return OK;
}

/* ------------------------------------------------------------------------
 * The JSON dialect -> BSON (dialect.loads + obj_to_value), for the canonical texts the writer
 * writes: no white space, no NaN/Infinity literals, the wrappers in the written key order. */

typedef struct {
    const char *s;
    Py_ssize_t i, n;
} JP;

static int jp_value(JP *p, Buf *out, uint8_t *t, int depth);

static inline int
jp_expect(JP *p, char c)
{
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return OK;
    }
    return NOPE;
}

static inline int
jp_peek(JP *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int
put_utf8(Buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return put_bytes(b, u, n);
}

static int
jp_hex4(JP *p, uint32_t *v)
{
    if (p->n - p->i < 4)
        return NOPE;
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + k]);
        if (h < 0)
            return NOPE;
        x = x << 4 | (uint32_t)h;
    }
    p->i += 4;
    *v = x;
    return OK;
}

/* A JSON string (at its opening quote): its UTF-8 text appended to out. Lone surrogates, raw
 * control characters: NOPE (Python keeps or refuses them; the exact walker decides). */
static int
jp_string(JP *p, Buf *out)
{
    TRY(jp_expect(p, '"'));
    const char *s = p->s;
    Py_ssize_t i = p->i, n = p->n;
    for (;;) {
        Py_ssize_t start = i;
        while (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            i++;
        }
        TRY(put_bytes(out, s + start, (size_t)(i - start)));
        if (i >= n)
            return NOPE;
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            p->i = i + 1;
            return OK;
        }
        if (c < 0x20)
            return NOPE;
        /* an escape */
        if (i + 1 >= n)
            return NOPE;
        char e = s[i + 1];
        i += 2;
        char lit;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            uint32_t cp;
            p->i = i;
            TRY(jp_hex4(p, &cp));
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return NOPE;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->i < 6 || s[p->i] != '\\' || s[p->i + 1] != 'u')
                    return NOPE;
                p->i += 2;
                TRY(jp_hex4(p, &lo));
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return NOPE;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            i = p->i;
            TRY(put_utf8(out, cp));
            continue;
        }
        default:
            return NOPE;
        }
        TRY(put_c(out, lit));
    }
}

/* A JSON string into a scratch buffer (the caller frees it) */
static int
jp_string_tmp(JP *p, Buf *tmp)
{
    tmp->len = 0;
    return jp_string(p, tmp);
}

/* A string value as BSON: int32 length (with the NUL), UTF-8, NUL */
static int
jp_bstring(JP *p, Buf *out)
{
    size_t at = out->len;
    TRY(put_i32(out, 0));
    TRY(jp_string(p, out));
    size_t n = out->len - at - 4 + 1;
    if (n > INT32_MAX)
        return NOPE;
    TRY(put_c(out, 0));
    wr_i32(out->data + at, (int32_t)n);
    return OK;
}

/* A string as a BSON cstring (field name, regex part): no NUL inside */
static int
jp_cstring(JP *p, Buf *out)
{
    size_t at = out->len;
    TRY(jp_string(p, out));
    if (memchr(out->data + at, 0, out->len - at) != NULL)
        return NOPE;
    return put_c(out, 0);
}

/* "literal": exactly, as a key followed by ':' */
static int
jp_key(JP *p, const char *key)
{
    size_t n = strlen(key);
    if (p->n - p->i < (Py_ssize_t)n + 3 || p->s[p->i] != '"' || memcmp(p->s + p->i + 1, key, n) != 0 ||
        p->s[p->i + 1 + n] != '"' || p->s[p->i + 2 + n] != ':')
        return NOPE;
    p->i += (Py_ssize_t)n + 3;
    return OK;
}

static int
jp_literal(JP *p, const char *lit)
{
    size_t n = strlen(lit);
    if (p->n - p->i < (Py_ssize_t)n || memcmp(p->s + p->i, lit, n) != 0)
        return NOPE;
    p->i += (Py_ssize_t)n;
    return OK;
}

/* A JSON number: an integer (int32) or, with a fraction or exponent, a double */
static int
jp_number(JP *p, Buf *out, uint8_t *t)
{
    const char *s = p->s;
    Py_ssize_t i = p->i, n = p->n, start = p->i;
    int is_float = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && is_digit(s[i]))
            i++;
    else
        return NOPE;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return NOPE;
        while (i < n && is_digit(s[i]))
            i++;
        is_float = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return NOPE;
        while (i < n && is_digit(s[i]))
            i++;
        is_float = 1;
    }
    p->i = i;
    if (!is_float) {
        int64_t v;
        TRY(parse_int(s + start, i - start, -INT32_LIMIT, INT32_LIMIT - 1, &v));
        *t = T_INT32;
        return put_i32(out, (int32_t)v);
    }
    double v;
    TRY(parse_double(s + start, i - start, &v));
    uint64_t bits;
    memcpy(&bits, &v, 8);
    *t = T_DOUBLE;
    return put_u64(out, bits);
}

/* Members of an object or array (after '{' or '['), as BSON elements; the document's length
 * prefix and NUL around them. Keys for objects, "0", "1", ... for arrays. */
static int
jp_elements(JP *p, Buf *out, int is_array, int depth)
{
    size_t at = out->len;
    TRY(put_i32(out, 0));
    char close = is_array ? ']' : '}';
    if (jp_peek(p) == close) {
        p->i++;
    }
    else {
        for (size_t k = 0;; k++) {
            size_t tpos = out->len;
            TRY(put_c(out, 0));
            if (is_array) {
                char tmp[24];
                char *tend = tmp + sizeof tmp;
                char *d = u64_digits(k, tend);
                TRY(put_bytes(out, d, (size_t)(tend - d) + 0));
                TRY(put_c(out, 0));
            }
            else {
                TRY(jp_cstring(p, out));
                TRY(jp_expect(p, ':'));
            }
            uint8_t vt;
            TRY(jp_value(p, out, &vt, depth + 1));
            out->data[tpos] = (char)vt;
            int c = jp_peek(p);
            p->i++;
            if (c == ',')
                continue;
            if (c == close)
                break;
            return NOPE;
        }
    }
    TRY(put_c(out, 0));
    size_t n = out->len - at;
    if (n > INT32_MAX)
        return NOPE;
    wr_i32(out->data + at, (int32_t)n);
    return OK;
}

/* {"$fields": [[name, value], ...]} / {"$arrayFields": ...}: after the key, the list of pairs */
static int
jp_pairs(JP *p, Buf *out, int depth)
{
    TRY(jp_expect(p, '['));
    size_t at = out->len;
    TRY(put_i32(out, 0));
    if (jp_peek(p) == ']') {
        p->i++;
    }
    else {
        for (;;) {
            TRY(jp_expect(p, '['));
            size_t tpos = out->len;
            TRY(put_c(out, 0));
            TRY(jp_cstring(p, out));
            TRY(jp_expect(p, ','));
            uint8_t vt;
            TRY(jp_value(p, out, &vt, depth + 1));
            out->data[tpos] = (char)vt;
            TRY(jp_expect(p, ']'));
            int c = jp_peek(p);
            p->i++;
            if (c == ',')
                continue;
            if (c == ']')
                break;
            return NOPE;
        }
    }
    TRY(put_c(out, 0));
    size_t n = out->len - at;
    if (n > INT32_MAX)
        return NOPE;
    wr_i32(out->data + at, (int32_t)n);
    return OK;
}

static int
b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* canonical base64 (padded, zero trailing bits) -> bytes appended to out */
static int
put_unbase64(Buf *out, const char *s, size_t n)
{
    if (n % 4)
        return NOPE;
    RESERVE(out, n / 4 * 3);
    for (size_t k = 0; k < n; k += 4) {
        int a = b64val(s[k]), b = b64val(s[k + 1]), c, d;
        if (a < 0 || b < 0)
            return NOPE;
        int last = k + 4 == n;
        if (last && s[k + 2] == '=' && s[k + 3] == '=') {
            if (b & 15)
                return NOPE;
            out->data[out->len++] = (char)(a << 2 | b >> 4);
            break;
        }
        c = b64val(s[k + 2]);
        if (c < 0)
            return NOPE;
        if (last && s[k + 3] == '=') {
            if (c & 3)
                return NOPE;
            out->data[out->len++] = (char)(a << 2 | b >> 4);
            out->data[out->len++] = (char)((b & 15) << 4 | c >> 2);
            break;
        }
        d = b64val(s[k + 3]);
        if (d < 0)
            return NOPE;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out->data[out->len++] = (char)(v >> 16);
        out->data[out->len++] = (char)((v >> 8) & 0xFF);
        out->data[out->len++] = (char)(v & 0xFF);
    }
    return OK;
}

/* a non-negative JSON integer below 2**32 */
static int
jp_uint32(JP *p, uint32_t *v)
{
    Py_ssize_t start = p->i;
    while (p->i < p->n && is_digit(p->s[p->i]))
        p->i++;
    Py_ssize_t nd = p->i - start;
    if (nd == 0 || nd > 10 || (nd > 1 && p->s[start] == '0'))
        return NOPE;
    uint64_t x = 0;
    for (Py_ssize_t k = start; k < p->i; k++)
        x = x * 10 + (uint64_t)(p->s[k] - '0');
    if (x > UINT32_MAX)
        return NOPE;
    *v = (uint32_t)x;
    return OK;
}

/* dialect._wrapper_value for the wrappers the writer writes; `key` was read (with its ':') */
static int
jp_wrapper(JP *p, Buf *out, const char *key, size_t klen, uint8_t *t, int depth)
{
    char stack[256];
    Buf tmp;
    BUF_INIT(tmp, stack);
    int r = NOPE;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
#define STR() do { if ((r = jp_string_tmp(p, &tmp)) != OK) goto done; } while (0)
#define CHECK(expr) do { if ((r = (expr)) != OK) goto done; } while (0)
#define FAIL() do { r = NOPE; goto done; } while (0)
    if (KEY("$numberLong") || KEY("$numberInt")) {
        int64_t v;
        int is_long = KEY("$numberLong");
        STR();
        CHECK(parse_int(tmp.data, (Py_ssize_t)tmp.len, is_long ? INT64_MIN : -INT32_LIMIT,
                        is_long ? INT64_MAX : INT32_LIMIT - 1, &v));
        if (is_long) {
            *t = T_INT64;
            CHECK(put_u64(out, (uint64_t)v));
        }
        else {
            *t = T_INT32;
            CHECK(put_i32(out, (int32_t)v));
        }
    }
    else if (KEY("$date")) {
        int64_t ms;
        if (jp_peek(p) == '"') {
            STR();
            CHECK(parse_date(tmp.data, (Py_ssize_t)tmp.len, &ms));
        }
        else {
            CHECK(jp_expect(p, '{'));
            CHECK(jp_key(p, "$numberLong"));
            STR();
            CHECK(parse_int(tmp.data, (Py_ssize_t)tmp.len, INT64_MIN, INT64_MAX, &ms));
            CHECK(jp_expect(p, '}'));
        }
        *t = T_DATE;
        CHECK(put_u64(out, (uint64_t)ms));
    }
    else if (KEY("$oid")) {
        uint8_t oid[12];
        STR();
        CHECK(parse_hex(tmp.data, (Py_ssize_t)tmp.len, oid, 12, 0));
        *t = T_OID;
        CHECK(put_bytes(out, oid, 12));
    }
    else if (KEY("$numberDecimal")) {
        uint8_t dec[16];
        STR();
        CHECK(parse_decimal(tmp.data, (Py_ssize_t)tmp.len, dec));
        *t = T_DECIMAL;
        CHECK(put_bytes(out, dec, 16));
    }
    else if (KEY("$numberDouble")) {
        double v;
        STR();
        if (tmp.len == 3 && memcmp(tmp.data, "NaN", 3) == 0)
            CHECK(parse_double("nan", 3, &v));
        else if (tmp.len == 8 && memcmp(tmp.data, "Infinity", 8) == 0)
            CHECK(parse_double("inf", 3, &v));
        else if (tmp.len == 9 && memcmp(tmp.data, "-Infinity", 9) == 0)
            CHECK(parse_double("-inf", 4, &v));
        else if (tmp.len && (is_digit(tmp.data[0]) || tmp.data[0] == '-' || tmp.data[0] == '.') &&
                 !(tmp.len == 4 && memcmp(tmp.data, "-inf", 4) == 0))
            CHECK(parse_double(tmp.data, (Py_ssize_t)tmp.len, &v));
        else
            FAIL();
        uint64_t bits;
        memcpy(&bits, &v, 8);
        *t = T_DOUBLE;
        CHECK(put_u64(out, bits));
    }
    else if (KEY("$doubleBits") || KEY("$decimalBits")) {
        uint8_t bits[16];
        int n = KEY("$doubleBits") ? 8 : 16;
        STR();
        CHECK(parse_hex(tmp.data, (Py_ssize_t)tmp.len, bits, n, 1));
        *t = n == 8 ? T_DOUBLE : T_DECIMAL;
        CHECK(put_bytes(out, bits, (size_t)n));
    }
    else if (KEY("$binary")) {
        CHECK(jp_expect(p, '{'));
        CHECK(jp_key(p, "base64"));
        STR();
        CHECK(jp_expect(p, ','));
        CHECK(jp_key(p, "subType"));
        char sub_text[2];
        uint8_t sub;
        if (p->n - p->i < 4 || p->s[p->i] != '"' || p->s[p->i + 3] != '"')
            FAIL();
        memcpy(sub_text, p->s + p->i + 1, 2);
        p->i += 4;
        CHECK(parse_hex(sub_text, 2, &sub, 1, 0));
        CHECK(jp_expect(p, '}'));
        size_t at = out->len;
        CHECK(put_i32(out, 0));
        CHECK(put_c(out, (char)sub));
        if (sub == 2)
            CHECK(put_i32(out, 0));
        size_t data_at = out->len;
        CHECK(put_unbase64(out, tmp.data, tmp.len));
        size_t dn = out->len - data_at;
        if (dn > INT32_MAX - 4)
            FAIL();
        if (sub == 2) {
            wr_i32(out->data + data_at - 4, (int32_t)dn);
            dn += 4;
        }
        wr_i32(out->data + at, (int32_t)dn);
        *t = T_BINARY;
    }
    else if (KEY("$regularExpression")) {
        CHECK(jp_expect(p, '{'));
        CHECK(jp_key(p, "pattern"));
        CHECK(jp_cstring(p, out));
        CHECK(jp_expect(p, ','));
        CHECK(jp_key(p, "options"));
        CHECK(jp_cstring(p, out));
        CHECK(jp_expect(p, '}'));
        *t = T_REGEX;
    }
    else if (KEY("$timestamp")) {
        uint32_t ts, inc;
        CHECK(jp_expect(p, '{'));
        CHECK(jp_key(p, "t"));
        CHECK(jp_uint32(p, &ts));
        CHECK(jp_expect(p, ','));
        CHECK(jp_key(p, "i"));
        CHECK(jp_uint32(p, &inc));
        CHECK(jp_expect(p, '}'));
        *t = T_TIMESTAMP;
        CHECK(put_i32(out, (int32_t)inc));
        CHECK(put_i32(out, (int32_t)ts));
    }
    else if (KEY("$code")) {
        if (p->i < p->n && p->s[p->i] == '"') {
            size_t at = out->len;
            CHECK(put_i32(out, 0));  /* code with scope: its total length, patched below */
            CHECK(jp_bstring(p, out));
            if (jp_peek(p) == ',') {
                p->i++;
                CHECK(jp_key(p, "$scope"));
                uint8_t st;
                CHECK(jp_value(p, out, &st, depth + 1));
                if (st != T_DOC)
                    FAIL();
                size_t n = out->len - at;
                if (n > INT32_MAX)
                    FAIL();
                wr_i32(out->data + at, (int32_t)n);
                *t = T_CODE_W_SCOPE;
            }
            else {
                memmove(out->data + at, out->data + at + 4, out->len - at - 4);
                out->len -= 4;
                *t = T_CODE;
            }
        }
        else {
            FAIL();
        }
    }
    else if (KEY("$symbol")) {
        if (jp_peek(p) != '"')
            FAIL();
        CHECK(jp_bstring(p, out));
        *t = T_SYMBOL;
    }
    else if (KEY("$dbPointer")) {
        uint8_t oid[12];
        CHECK(jp_expect(p, '{'));
        CHECK(jp_key(p, "$ref"));
        if (jp_peek(p) != '"')
            FAIL();
        CHECK(jp_bstring(p, out));
        CHECK(jp_expect(p, ','));
        CHECK(jp_key(p, "$id"));
        CHECK(jp_expect(p, '{'));
        CHECK(jp_key(p, "$oid"));
        STR();
        CHECK(parse_hex(tmp.data, (Py_ssize_t)tmp.len, oid, 12, 0));
        CHECK(jp_expect(p, '}'));
        CHECK(jp_expect(p, '}'));
        CHECK(put_bytes(out, oid, 12));
        *t = T_DBPOINTER;
    }
    else if (KEY("$undefined")) {
        CHECK(jp_literal(p, "true"));
        *t = T_UNDEFINED;
    }
    else if (KEY("$minKey") || KEY("$maxKey")) {
        CHECK(jp_literal(p, "1"));
        *t = KEY("$minKey") ? T_MINKEY : T_MAXKEY;
    }
    else if (KEY("$fields") || KEY("$arrayFields")) {
        CHECK(jp_pairs(p, out, depth));
        *t = KEY("$fields") ? T_DOC : T_ARRAY;
    }
    else {
        FAIL();  /* other wrappers: the exact walker reads or refuses them */
    }
    r = jp_expect(p, '}');
done:
    buf_free(&tmp);
    return r;
#undef KEY
#undef STR
#undef CHECK
#undef FAIL
}

/* An object: a document, or (first key starting with '$') a type wrapper */
static int
jp_object(JP *p, Buf *out, uint8_t *t, int depth)
{
    p->i++;  /* '{' */
    if (jp_peek(p) == '"' && p->i + 1 < p->n && p->s[p->i + 1] == '$') {
        /* a wrapper: its key is short and plain; anything else is left to the exact walker */
        Py_ssize_t k = p->i + 1, end = k;
        while (end < p->n && end - k < 32 && p->s[end] != '"' && p->s[end] != '\\')
            end++;
        if (end >= p->n || p->s[end] != '"' || end + 1 >= p->n || p->s[end + 1] != ':')
            return NOPE;
        p->i = end + 2;
        return jp_wrapper(p, out, p->s + k, (size_t)(end - k), t, depth);
    }
    if (jp_peek(p) == '"' && p->i + 2 < p->n && p->s[p->i + 1] == '\\')
        return NOPE;  /* an escaped first key might decode to '$...' */
    *t = T_DOC;
    return jp_elements(p, out, 0, depth);
}

static int
jp_value(JP *p, Buf *out, uint8_t *t, int depth)
{
    if (depth > MAX_DEPTH)
        return NOPE;
    switch (jp_peek(p)) {
    case '"':
        *t = T_STRING;
        return jp_bstring(p, out);
    case '{':
        return jp_object(p, out, t, depth);
    case '[':
        p->i++;
        *t = T_ARRAY;
        return jp_elements(p, out, 1, depth);
    case 't':
        *t = T_BOOL;
        TRY(jp_literal(p, "true"));
        return put_c(out, 1);
    case 'f':
        *t = T_BOOL;
        TRY(jp_literal(p, "false"));
        return put_c(out, 0);
    case 'n':
        *t = T_NULL;
        return jp_literal(p, "null");
    default:
        return jp_number(p, out, t);
    }
}

/* A whole JSON cell as one BSON value */
static int
json_value(const char *s, Py_ssize_t n, Buf *out, uint8_t *t)
{
    JP p = {s, 0, n};
    TRY(jp_value(&p, out, t, 0));
    return p.i == n ? OK : NOPE;
}

/* ------------------------------------------------------------------------
 * RowDecoder */

typedef struct {
    PyObject_HEAD
    Columns cols;
} DecoderObject;

static PyObject *
Decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *names;
    static char *kwlist[] = {"names", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &names))
        return NULL;
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (columns_init(&self->cols, names) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Decoder_dealloc(DecoderObject *self)
{
    columns_free(&self->cols);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* UTF-8 of a cell; NOPE for a str that has none (lone surrogates) or a non-str */
static int
cell_utf8(PyObject *cell, const char **s, Py_ssize_t *n)
{
    if (!PyUnicode_CheckExact(cell))
        return NOPE;
    *s = PyUnicode_AsUTF8AndSize(cell, n);
    if (*s == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return NOPE;
        }
        return ERR;
    }
    return OK;
}

/* one cell of cell type `code` as BSON value bytes; *t gets the BSON type */
static int
cell_value(int code, const char *s, Py_ssize_t n, Buf *out, uint8_t *t)
{
    int64_t v;
    switch (code) {
    case T_STRING:
        if (n && s[0] == '\'') {  /* cells.unguard */
            s++;
            n--;
        }
        if (n >= INT32_MAX)
            return NOPE;
        *t = T_STRING;
        TRY(put_i32(out, (int32_t)(n + 1)));
        TRY(put_bytes(out, s, (size_t)n));
        return put_c(out, 0);
    case T_INT32:
        *t = T_INT32;
        TRY(parse_int(s, n, -INT32_LIMIT, INT32_LIMIT - 1, &v));
        return put_i32(out, (int32_t)v);
    case T_INT64:
        *t = T_INT64;
        TRY(parse_int(s, n, INT64_MIN, INT64_MAX, &v));
        return put_u64(out, (uint64_t)v);
    case T_DOUBLE: {
        double d;
        uint64_t bits;
        TRY(parse_double(s, n, &d));
        memcpy(&bits, &d, 8);
        *t = T_DOUBLE;
        return put_u64(out, bits);
    }
    case T_BOOL:
        *t = T_BOOL;
        if (n == 4 && memcmp(s, "true", 4) == 0)
            return put_c(out, 1);
        if (n == 5 && memcmp(s, "false", 5) == 0)
            return put_c(out, 0);
        return NOPE;
    case T_DATE:
        *t = T_DATE;
        TRY(parse_date(s, n, &v));
        return put_u64(out, (uint64_t)v);
    case T_OID: {
        uint8_t oid[12];
        *t = T_OID;
        TRY(parse_hex(s, n, oid, 12, 0));
        return put_bytes(out, oid, 12);
    }
    case T_DECIMAL: {
        uint8_t dec[16];
        *t = T_DECIMAL;
        TRY(parse_decimal(s, n, dec));
        return put_bytes(out, dec, 16);
    }
    case T_NULL:
        *t = T_NULL;
        return n == 0 ? OK : NOPE;
    case C_JSON:
        return json_value(s, n, out, t);
    }
    return NOPE;
}

/* plan: int32 pairs (column, cell type code) in field order; missing: int32 columns (little-endian) */
static int
decode_row(DecoderObject *self, PyObject *row, const uint8_t *plan, Py_ssize_t nplan, const uint8_t *missing,
           Py_ssize_t nmissing, Buf *out)
{
    const Columns *cols = &self->cols;
    Py_ssize_t ncols = cols->n;
    if (!PyList_CheckExact(row) && !PyTuple_CheckExact(row))
        return NOPE;
    if (PySequence_Fast_GET_SIZE(row) != ncols + 1)
        return NOPE;
    PyObject **cells = PySequence_Fast_ITEMS(row);
    for (Py_ssize_t k = 0; k < nmissing; k++) {
        int32_t i = rd_i32(missing + 4 * k);
        if (i < 0 || i >= ncols || !PyUnicode_CheckExact(cells[i]) || PyUnicode_GET_LENGTH(cells[i]) != 0)
            return NOPE;
    }
    TRY(put_i32(out, 0));
    for (Py_ssize_t k = 0; k < nplan; k++) {
        int32_t i = rd_i32(plan + 8 * k), code = rd_i32(plan + 8 * k + 4);
        if (i < 0 || i >= ncols)
            return NOPE;
        const char *s;
        Py_ssize_t n;
        TRY(cell_utf8(cells[i], &s, &n));
        size_t tpos = out->len;
        Py_ssize_t nlen = cols->offsets[i + 1] - cols->offsets[i];
        RESERVE(out, (size_t)nlen + 2);
        out->data[out->len++] = 0;
        memcpy(out->data + out->len, cols->names + cols->offsets[i], (size_t)nlen);
        out->len += (size_t)nlen;
        out->data[out->len++] = 0;
        uint8_t t;
        TRY(cell_value(code, s, n, out, &t));
        out->data[tpos] = (char)t;
    }
    TRY(put_c(out, 0));
    if (out->len > INT32_MAX)
        return NOPE;
    wr_i32(out->data, (int32_t)out->len);
    return OK;
}

static PyObject *
Decoder_decode(DecoderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[1]) || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "decode(row, plan: bytes, missing: bytes)");
        return NULL;
    }
    Py_ssize_t plen = PyBytes_GET_SIZE(args[1]), mlen = PyBytes_GET_SIZE(args[2]);
    if (plen % 8 || mlen % 4) {
        PyErr_SetString(PyExc_ValueError, "plan: int32 pairs (column, cell type); missing: int32 columns");
        return NULL;
    }
    char stack[8192];
    Buf out;
    BUF_INIT(out, stack);
    PyObject *result = NULL;
    int r = decode_row(self, args[0], (const uint8_t *)PyBytes_AS_STRING(args[1]), plen / 8,
                       (const uint8_t *)PyBytes_AS_STRING(args[2]), mlen / 4, &out);
    if (r == OK)
        result = PyBytes_FromStringAndSize(out.data, (Py_ssize_t)out.len);
    else if (r == NOPE)
        result = Py_NewRef(Py_None);
    buf_free(&out);
    return result;
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))Decoder_decode, METH_FASTCALL,
     "decode(row, plan, missing) -> bytes | None: the raw BSON of a row, or None (not handled here).\n"
     "plan: int32 pairs (column, cell type code) in field order; missing: int32 columns that must be empty."},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "backup_core.codec._speedups.RowDecoder",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RowDecoder(names: list[bytes]): rows of one schema back to raw BSON (see rows.RowDecoder).",
    .tp_methods = Decoder_methods,
    .tp_new = Decoder_new,
};

/* ------------------------------------------------------------------------
 * Module functions for the dialect (tests, and whole-document use) */

static PyObject *
sp_to_json_text(PyObject *mod, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg))
        Py_RETURN_NONE;
    const uint8_t *buf = (const uint8_t *)PyBytes_AS_STRING(arg);
    char stack[4096];
    Buf b;
    BUF_INIT(b, stack);
    PyObject *s = NULL;
    int r = jw_doc(&b, buf, 0, PyBytes_GET_SIZE(arg), 0, 0);
    if (r == OK)
        s = utf8_str(b.data, b.len, &r);
    buf_free(&b);
    if (r == NOPE)
        Py_RETURN_NONE;
    return s;
}

static PyObject *
sp_from_json_text(PyObject *mod, PyObject *arg)
{
    const char *s;
    Py_ssize_t n;
    int r = cell_utf8(arg, &s, &n);
    if (r == ERR)
        return NULL;
    if (r == NOPE || n == 0 || s[0] != '{')
        Py_RETURN_NONE;
    char stack[4096];
    Buf b;
    BUF_INIT(b, stack);
    uint8_t t;
    PyObject *out = NULL;
    r = json_value(s, n, &b, &t);
    if (r == OK && t != T_DOC)
        r = NOPE;
    if (r == OK)
        out = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
    else if (r == NOPE)
        out = Py_NewRef(Py_None);
    buf_free(&b);
    return out;
}

static PyObject *
sp_decimal_text(PyObject *mod, PyObject *arg)
{
    if (!PyBytes_CheckExact(arg) || PyBytes_GET_SIZE(arg) != 16) {
        PyErr_SetString(PyExc_TypeError, "decimal_text takes 16 bytes");
        return NULL;
    }
    char text[64];
    size_t n;
    if (!decimal_text((const uint8_t *)PyBytes_AS_STRING(arg), text, &n))
        Py_RETURN_NONE;
    return ascii_str(text, n);
}

static PyMethodDef module_methods[] = {
    {"shape_key", sp_shape_key, METH_O,
     "shape_key(raw) -> bytes | None: type byte, name, NUL per top-level field (0xFE: a date without ISO text)."},
    {"to_json_text", sp_to_json_text, METH_O, "to_json_text(raw) -> str | None: dialect.to_json_text, or None."},
    {"from_json_text", sp_from_json_text, METH_O,
     "from_json_text(text) -> bytes | None: dialect.from_json_text, or None."},
    {"decimal_text", sp_decimal_text, METH_O, "decimal_text(bits16) -> str | None: cells.decimal_text."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "backup_core.codec._speedups",
    .m_doc = "Compiled hot loops of the CSV codec (optional; see backup_core/codec/accel.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int c = 0; c < 0x20; c++)
        JSON_ESC[c] = 1;
    JSON_ESC['"'] = 1;
    JSON_ESC['\\'] = 1;
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&DecoderType) < 0)
        return NULL;
    if (EMPTY == NULL) {
        EMPTY = PyUnicode_FromStringAndSize("", 0);
        TRUE_S = PyUnicode_InternFromString("true");
        FALSE_S = PyUnicode_InternFromString("false");
        if (EMPTY == NULL || TRUE_S == NULL || FALSE_S == NULL)
            return NULL;
    }
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RowEncoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "RowDecoder", (PyObject *)&DecoderType) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_SHA256", SPEEDUPS_SOURCE_SHA256) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
