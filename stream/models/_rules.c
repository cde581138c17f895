/* Compiled rule rows for stream/models/rules.py (SR, AR, Markov).
 *
 * One row per source item int: its partners in insertion order with their weights, as two flat
 * arrays. The semantics are those of the pure-Python rows (rules.py, _DictRows) operation by
 * operation:
 *   - add(a, b, w): row[a][b] = (old or 0.0) + w, a new partner appended at the end;
 *   - a row longer than 2 * max_row is cut to its max_row heaviest partners, heaviest first,
 *     equal weights in their previous order (Python's stable sorted(..., reverse=True));
 *   - top(a, k): the first k of the row ranked by weight descending, equal weights by position
 *     in the row (the same stable sort), pruned to `pruning` partners (0 keeps all).
 * Rankings are computed when asked (a row holds at most 2 * max_row + 1 partners), so there is
 * no cache to keep in step with the weights.
 *
 * Item ints are the dense non-negative ints of stream.state.items.ItemIndex; rows are an array indexed
 * by them. Everything runs under the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_ITEM ((long)1 << 30)

typedef struct {
    int32_t len, cap;
    int32_t *b; /* partners */
    double *w;  /* their weights */
} Row;

typedef struct {
    PyObject_HEAD
    Row *rows;
    PyObject **ints;    /* ints[b]: a reference to an int object equal to b, handed out by top() */
    Py_ssize_t n_slots; /* rows[0 .. n_slots) and ints[0 .. n_slots) allocated */
    Py_ssize_t n_rows;  /* rows with at least one partner */
    long pruning, max_row, steps;
    double *wx;     /* wx[x]: weight of a predecessor x steps back, x = 1 .. steps */
    int32_t *order; /* scratch of top(): 2 * max_row + 1 entries */
} RuleRows;

static int grow_slots(RuleRows *self, long a) {
    Py_ssize_t n = self->n_slots ? self->n_slots : 1024;
    while (n <= a) n *= 2;
    Row *rows = PyMem_Realloc(self->rows, (size_t)n * sizeof(Row));
    if (rows == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(rows + self->n_slots, 0, (size_t)(n - self->n_slots) * sizeof(Row));
    self->rows = rows;
    PyObject **ints = PyMem_Realloc(self->ints, (size_t)n * sizeof(PyObject *));
    if (ints == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(ints + self->n_slots, 0, (size_t)(n - self->n_slots) * sizeof(PyObject *));
    self->ints = ints;
    self->n_slots = n;
    return 0;
}

static int item_of(PyObject *o, long *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v >= MAX_ITEM) {
        PyErr_Format(PyExc_ValueError, "rule rows take item ints in [0, 2**30) (ItemIndex ints), got %ld", v);
        return -1;
    }
    *out = v;
    return 0;
}

/* Keep the max_row heaviest partners of r, heaviest first, ties in their previous order. */
static void prune(Row *r, long max_row) {
    int32_t n = r->len;
    for (int32_t i = 1; i < n; i++) { /* stable insertion sort, descending */
        int32_t b = r->b[i];
        double w = r->w[i];
        int32_t j = i;
        while (j > 0 && r->w[j - 1] < w) {
            r->b[j] = r->b[j - 1];
            r->w[j] = r->w[j - 1];
            j--;
        }
        r->b[j] = b;
        r->w[j] = w;
    }
    r->len = (int32_t)max_row;
}

/* row[a][b] += w; b_obj: the caller's int object for b (kept for top()), or NULL to make one. */
static int add(RuleRows *self, long a, long b, PyObject *b_obj, double w) {
    long hi = a > b ? a : b;
    if (hi >= self->n_slots && grow_slots(self, hi) < 0) return -1;
    if (self->ints[b] == NULL) { /* the first time b is a partner: share the caller's int object */
        if (b_obj != NULL && PyLong_CheckExact(b_obj)) {
            Py_INCREF(b_obj);
        } else if ((b_obj = PyLong_FromLong(b)) == NULL) {
            return -1;
        }
        self->ints[b] = b_obj;
    }
    Row *r = &self->rows[a];
    int32_t n = r->len;
    int32_t *pb = r->b;
    for (int32_t i = 0; i < n; i++) {
        if (pb[i] == (int32_t)b) {
            r->w[i] = r->w[i] + w;
            return 0;
        }
    }
    if (n == r->cap) {
        int32_t cap = r->cap ? 2 * r->cap : 4;
        int32_t most = (int32_t)(2 * self->max_row + 1);
        if (cap > most) cap = most;
        int32_t *nb = PyMem_Realloc(r->b, (size_t)cap * sizeof(int32_t));
        if (nb == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->b = nb;
        double *nw = PyMem_Realloc(r->w, (size_t)cap * sizeof(double));
        if (nw == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->w = nw;
        r->cap = cap;
    }
    if (n == 0) self->n_rows++;
    r->b[n] = (int32_t)b;
    r->w[n] = 0.0 + w;
    r->len = n + 1;
    if (r->len > 2 * self->max_row) prune(r, self->max_row);
    return 0;
}

/* Indices of the best m entries of row a (weight descending, then position), into self->order. */
static int32_t rank(RuleRows *self, long a, long k) {
    if (a >= self->n_slots) return 0;
    Row *r = &self->rows[a];
    int32_t n = r->len;
    long m = self->pruning > 0 && self->pruning < k ? self->pruning : k;
    if (m > n) m = n;
    if (m <= 0) return 0;
    int32_t *ord = self->order;
    const double *w = r->w;
    int32_t cnt = 0;
    for (int32_t i = 0; i < n; i++) {
        double wi = w[i];
        int32_t j;
        if (cnt < m) {
            j = cnt++;
        } else if (wi > w[ord[m - 1]]) {
            j = (int32_t)m - 1;
        } else {
            continue;
        }
        while (j > 0 && w[ord[j - 1]] < wi) { /* an equal weight listed earlier stays ahead */
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
    return cnt;
}

static PyObject *top_list(RuleRows *self, long a, long k) {
    int32_t m = rank(self, a, k);
    PyObject *out = PyList_New(m);
    if (out == NULL) return NULL;
    const int32_t *b = m ? self->rows[a].b : NULL;
    for (int32_t j = 0; j < m; j++) { /* no new int objects: the lists share the items' ints */
        PyObject *v = self->ints[b[self->order[j]]];
        Py_INCREF(v);
        PyList_SET_ITEM(out, j, v);
    }
    return out;
}

/* -- the type ------------------------------------------------------------------------------ */

static void RuleRows_dealloc(RuleRows *self) {
    for (Py_ssize_t i = 0; i < self->n_slots; i++) {
        PyMem_Free(self->rows[i].b);
        PyMem_Free(self->rows[i].w);
        Py_XDECREF(self->ints[i]);
    }
    PyMem_Free(self->rows);
    PyMem_Free(self->ints);
    PyMem_Free(self->wx);
    PyMem_Free(self->order);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int RuleRows_init(RuleRows *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"pruning", "max_row", "weights", NULL};
    long pruning, max_row;
    PyObject *weights = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ll|O", kwlist, &pruning, &max_row, &weights)) return -1;
    if (max_row < 1 || max_row > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "max_row must be in [1, 2**20]");
        return -1;
    }
    if (self->order != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "RuleRows is already initialised");
        return -1;
    }
    self->pruning = pruning;
    self->max_row = max_row;
    self->order = PyMem_Malloc((size_t)(2 * max_row + 1) * sizeof(int32_t));
    if (self->order == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->steps = 0;
    if (weights != NULL && weights != Py_None) { /* [w0, w1, ..., w_steps]: w0 unused */
        PyObject *seq = PySequence_Fast(weights, "weights must be a sequence of floats");
        if (seq == NULL) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        self->wx = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
        if (self->wx == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            self->wx[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
            if (self->wx[i] == -1.0 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
        }
        self->steps = n > 0 ? (long)n - 1 : 0;
        Py_DECREF(seq);
    }
    return 0;
}

/* What one click adds, given its history h[0..n) (oldest first), its item (int and object) and the
 * scale of its increments: 0, or -1 with an exception set. */
typedef int (*learn_fn)(RuleRows *self, PyObject **h, Py_ssize_t n, long item, PyObject *item_obj,
                        double scale);

/* learn_steps / learn_pairs: parse (history, item[, scale]) (scale 1 when left out), run `learn`
 * over the history, drop it. Inline with a constant `learn`, so each method compiles to one direct
 * loop. */
static inline PyObject *learn_click(RuleRows *self, PyObject *const *args, Py_ssize_t nargs,
                                    const char *usage, learn_fn learn) {
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    long item;
    if (item_of(args[1], &item) < 0) return NULL;
    double scale = 1.0;
    if (nargs == 3) {
        scale = PyFloat_AsDouble(args[2]);
        if (scale == -1.0 && PyErr_Occurred()) return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "history must be a sequence of item ints");
    if (seq == NULL) return NULL;
    int rc = learn(self, PySequence_Fast_ITEMS(seq), PySequence_Fast_GET_SIZE(seq), item, args[1], scale);
    Py_DECREF(seq);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* SR: item after each of the last `steps` clicks, most recent first, weighted wx[x] x steps back. */
static int learn_steps(RuleRows *self, PyObject **h, Py_ssize_t n, long item, PyObject *item_obj,
                       double scale) {
    Py_ssize_t last = n < self->steps ? n : self->steps;
    for (Py_ssize_t x = 1; x <= last; x++) {
        long a;
        if (item_of(h[n - x], &a) != 0 || add(self, a, item, item_obj, self->wx[x] * scale) != 0) return -1;
    }
    return 0;
}

/* AR: item with every click of the session, both directions, oldest first. */
static int learn_pairs(RuleRows *self, PyObject **h, Py_ssize_t n, long item, PyObject *item_obj,
                       double scale) {
    for (Py_ssize_t i = 0; i < n; i++) {
        long prev;
        if (item_of(h[i], &prev) != 0 || add(self, prev, item, item_obj, scale) != 0
            || add(self, item, prev, h[i], scale) != 0) return -1;
    }
    return 0;
}

static PyObject *RuleRows_learn_steps(RuleRows *self, PyObject *const *args, Py_ssize_t nargs) {
    return learn_click(self, args, nargs, "learn_steps(history, item[, scale])", learn_steps);
}

static PyObject *RuleRows_learn_pairs(RuleRows *self, PyObject *const *args, Py_ssize_t nargs) {
    return learn_click(self, args, nargs, "learn_pairs(history, item[, scale])", learn_pairs);
}

static PyObject *RuleRows_add(RuleRows *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add(a, b, w)");
        return NULL;
    }
    long a, b;
    if (item_of(args[0], &a) < 0 || item_of(args[1], &b) < 0) return NULL;
    double w = PyFloat_AsDouble(args[2]);
    if (w == -1.0 && PyErr_Occurred()) return NULL;
    if (add(self, a, b, args[1], w) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *RuleRows_top(RuleRows *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "top(a, k)");
        return NULL;
    }
    long a = PyLong_AsLong(args[0]);
    if (a == -1 && PyErr_Occurred()) return NULL;
    long k = PyLong_AsLong(args[1]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (a < 0) return PyList_New(0);
    return top_list(self, a, k);
}

static PyObject *RuleRows_ranked(RuleRows *self, PyObject *arg) {
    long a = PyLong_AsLong(arg);
    if (a == -1 && PyErr_Occurred()) return NULL;
    if (a < 0) return PyList_New(0);
    return top_list(self, a, 2 * self->max_row + 1);
}

/* d[k] = v, taking over the references to k and v (either may be NULL: an error is set). */
static int put(PyObject *d, PyObject *k, PyObject *v) {
    int rc = k == NULL || v == NULL ? -1 : PyDict_SetItem(d, k, v);
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* scores(a): {partner: weight / the heaviest's weight} over a's pruned ranking (session-rec's). */
static PyObject *RuleRows_scores(RuleRows *self, PyObject *arg) {
    long a = PyLong_AsLong(arg);
    if (a == -1 && PyErr_Occurred()) return NULL;
    PyObject *d = PyDict_New();
    if (d == NULL || a < 0) return d;
    int32_t m = rank(self, a, 2 * self->max_row + 1);
    if (m == 0) return d;
    const Row *r = &self->rows[a];
    double top = r->w[self->order[0]];
    for (int32_t j = 0; j < m; j++) {
        int32_t i = self->order[j];
        PyObject *k = self->ints[r->b[i]];
        Py_INCREF(k);
        if (put(d, k, PyFloat_FromDouble(r->w[i] / top)) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* to_dict(): {a: {b: w}} for every row with a partner, items ascending, partners in row order. */
static PyObject *RuleRows_to_dict(RuleRows *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (Py_ssize_t a = 0; a < self->n_slots; a++) {
        const Row *r = &self->rows[a];
        if (r->len == 0) continue;
        PyObject *d = PyDict_New();
        if (put(out, PyLong_FromSsize_t(a), d == NULL ? NULL : Py_NewRef(d)) < 0) {
            Py_XDECREF(d);
            Py_DECREF(out);
            return NULL;
        }
        for (int32_t i = 0; i < r->len; i++) {
            if (put(d, PyLong_FromLong(r->b[i]), PyFloat_FromDouble(r->w[i])) < 0) {
                Py_DECREF(d);
                Py_DECREF(out);
                return NULL;
            }
        }
        Py_DECREF(d);
    }
    return out;
}

/* export() -> (sources, lengths, partners, weights): int32, int32, int32, float64 bytes. */
static PyObject *RuleRows_export(RuleRows *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t total = 0;
    for (Py_ssize_t a = 0; a < self->n_slots; a++) total += self->rows[a].len;
    Py_ssize_t nr = self->n_rows;
    PyObject *src = PyBytes_FromStringAndSize(NULL, nr * 4);
    PyObject *lens = PyBytes_FromStringAndSize(NULL, nr * 4);
    PyObject *part = PyBytes_FromStringAndSize(NULL, total * 4);
    PyObject *wts = PyBytes_FromStringAndSize(NULL, total * 8);
    if (src == NULL || lens == NULL || part == NULL || wts == NULL) goto fail;
    int32_t *ps = (int32_t *)PyBytes_AS_STRING(src);
    int32_t *pl = (int32_t *)PyBytes_AS_STRING(lens);
    int32_t *pp = (int32_t *)PyBytes_AS_STRING(part);
    double *pw = (double *)PyBytes_AS_STRING(wts);
    Py_ssize_t r = 0, e = 0;
    for (Py_ssize_t a = 0; a < self->n_slots; a++) {
        const Row *row = &self->rows[a];
        if (row->len == 0) continue;
        ps[r] = (int32_t)a;
        pl[r++] = row->len;
        memcpy(pp + e, row->b, (size_t)row->len * sizeof(int32_t));
        memcpy(pw + e, row->w, (size_t)row->len * sizeof(double));
        e += row->len;
    }
    return Py_BuildValue("(NNNN)", src, lens, part, wts);
fail:
    Py_XDECREF(src);
    Py_XDECREF(lens);
    Py_XDECREF(part);
    Py_XDECREF(wts);
    return NULL;
}

/* load(sources, lengths, partners, weights): rows as export() gives them, appended in order. */
static PyObject *RuleRows_load(RuleRows *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "load(sources, lengths, partners, weights)");
        return NULL;
    }
    Py_buffer v[4];
    int got = 0;
    for (; got < 4; got++)
        if (PyObject_GetBuffer(args[got], &v[got], PyBUF_SIMPLE) < 0) goto done;
    Py_ssize_t nr = v[0].len / 4, total = v[2].len / 4;
    if (v[1].len != v[0].len || v[3].len != 8 * total) {
        PyErr_SetString(PyExc_ValueError, "inconsistent rule rows");
        goto done;
    }
    const int32_t *ps = v[0].buf, *pl = v[1].buf, *pp = v[2].buf;
    const double *pw = v[3].buf;
    Py_ssize_t e = 0;
    for (Py_ssize_t r = 0; r < nr; r++) {
        if (pl[r] < 0 || e + pl[r] > total) {
            PyErr_SetString(PyExc_ValueError, "inconsistent rule rows");
            goto done;
        }
        for (int32_t i = 0; i < pl[r]; i++, e++)
            if (ps[r] < 0 || ps[r] >= MAX_ITEM || pp[e] < 0 || add(self, ps[r], pp[e], NULL, pw[e]) < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "item int out of range in rule rows");
                goto done;
            }
    }
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static Py_ssize_t RuleRows_len(RuleRows *self) { return self->n_rows; }

static PyMethodDef RuleRows_methods[] = {
    {"learn_steps", (PyCFunction)(void (*)(void))RuleRows_learn_steps, METH_FASTCALL,
     "learn_steps(history, item[, scale]): add weights[x] * scale to row[history[-x]][item], "
     "x = 1 .. steps (SR)."},
    {"learn_pairs", (PyCFunction)(void (*)(void))RuleRows_learn_pairs, METH_FASTCALL,
     "learn_pairs(history, item[, scale]): add scale (1) to row[prev][item] and row[item][prev] "
     "for every prev (AR)."},
    {"add", (PyCFunction)(void (*)(void))RuleRows_add, METH_FASTCALL, "add(a, b, w): row[a][b] += w."},
    {"top", (PyCFunction)(void (*)(void))RuleRows_top, METH_FASTCALL,
     "top(a, k): the first k partners of a's ranking (weight descending, ties by row order), pruned."},
    {"ranked", (PyCFunction)RuleRows_ranked, METH_O, "ranked(a): a's whole pruned ranking."},
    {"scores", (PyCFunction)RuleRows_scores, METH_O,
     "scores(a): {partner: weight / the top weight} over a's pruned ranking."},
    {"to_dict", (PyCFunction)RuleRows_to_dict, METH_NOARGS, "Every row as {a: {b: w}} (a copy)."},
    {"export", (PyCFunction)RuleRows_export, METH_NOARGS,
     "(sources, lengths, partners, weights) as int32/int32/int32/float64 bytes."},
    {"load", (PyCFunction)(void (*)(void))RuleRows_load, METH_FASTCALL, "Add rows given as export() returns them."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods RuleRows_as_sequence = {
    .sq_length = (lenfunc)RuleRows_len,
};

static PyTypeObject RuleRowsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "stream.models._rules.RuleRows",
    .tp_doc = PyDoc_STR("RuleRows(pruning, max_row, weights=None): rule rows in flat C arrays."),
    .tp_basicsize = sizeof(RuleRows),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RuleRows_init,
    .tp_dealloc = (destructor)RuleRows_dealloc,
    .tp_methods = RuleRows_methods,
    .tp_as_sequence = &RuleRows_as_sequence,
};

static struct PyModuleDef rules_module = {
    PyModuleDef_HEAD_INIT, .m_name = "_rules",
    .m_doc = "Compiled rule rows of stream.models.rules (see _DictRows there for the reference).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__rules(void) {
    if (PyType_Ready(&RuleRowsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&rules_module);
    if (m == NULL) return NULL;
    Py_INCREF(&RuleRowsType);
    if (PyModule_AddObject(m, "RuleRows", (PyObject *)&RuleRowsType) < 0) {
        Py_DECREF(&RuleRowsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
