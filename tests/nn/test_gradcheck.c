/* test_gradcheck.c — finite-difference gradient checks of every op and
 * every loss, driven by a loop over the op table: cases[] has a row per
 * nn_op (a _Static_assert keeps it the size of the table, and the loop
 * fails on an op without a case), each with variants for transposes,
 * broadcasting, masks and lengths.  Every case must put its op on the
 * tape, and every parameter it makes is checked element by element. */
#include "testutil.h"

#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    nn_params ps;
    ember_rng rng;
    int variant;
} gc_ctx;

typedef nn_tensor *(*case_fn)(nn_graph *g, gc_ctx *c);

typedef struct {
    case_fn build;
    int variants;
} gc_case;

/* A parameter made on first use with values U(lo, hi), or +-U(lo, hi)
 * when away_from_zero (kinks and divisions). */
static nn_param *par_make(gc_ctx *c, const char *name, int ndim, const int *shape, float lo,
                          float hi, bool away_from_zero, bool sparse)
{
    nn_param *p = nn_params_find(&c->ps, name);
    if (p)
        return p;
    p = nn_params_add(&c->ps, name, ndim, shape, sparse);
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        float u = lo + (hi - lo) * (float)ember_rng_uniform(&c->rng);
        if (away_from_zero && ember_rng_uniform(&c->rng) < 0.5)
            u = -u;
        p->value[i] = u;
    }
    return p;
}

static nn_tensor *P(nn_graph *g, gc_ctx *c, const char *name, int ndim, const int *shape)
{
    return nn_param_node(g, par_make(c, name, ndim, shape, -1.0f, 1.0f, false, false));
}

static nn_tensor *Paway(nn_graph *g, gc_ctx *c, const char *name, int ndim, const int *shape,
                        float lo, float hi)
{
    return nn_param_node(g, par_make(c, name, ndim, shape, lo, hi, true, false));
}

/* ------------------------------------------------------------ cases */

static nn_tensor *case_matmul(nn_graph *g, gc_ctx *c)
{
    switch (c->variant) {
    case 0:
        return nn_matmul(g, P(g, c, "a", 2, (int[]){3, 4}), P(g, c, "b", 2, (int[]){4, 5}), false,
                         false);
    case 1:
        return nn_matmul(g, P(g, c, "a", 2, (int[]){4, 3}), P(g, c, "b", 2, (int[]){4, 5}), true,
                         false);
    case 2:
        return nn_matmul(g, P(g, c, "a", 2, (int[]){3, 4}), P(g, c, "b", 2, (int[]){5, 4}), false,
                         true);
    case 3:
        return nn_matmul(g, P(g, c, "a", 2, (int[]){4, 3}), P(g, c, "b", 2, (int[]){5, 4}), true,
                         true);
    case 4: /* batched */
        return nn_matmul(g, P(g, c, "a", 3, (int[]){2, 3, 4}), P(g, c, "b", 3, (int[]){2, 4, 5}),
                         false, false);
    case 5: /* b shared by the batch (one folded product) */
        return nn_matmul(g, P(g, c, "a", 3, (int[]){2, 3, 4}), P(g, c, "b", 2, (int[]){4, 5}),
                         false, false);
    case 6: /* a shared */
        return nn_matmul(g, P(g, c, "a", 2, (int[]){3, 4}), P(g, c, "b", 3, (int[]){2, 4, 5}),
                         false, false);
    case 7: /* b shared, a transposed (not folded) */
        return nn_matmul(g, P(g, c, "a", 3, (int[]){2, 4, 3}), P(g, c, "b", 2, (int[]){4, 5}),
                         true, false);
    default: /* 4-D batch, b transposed */
        return nn_matmul(g, P(g, c, "a", 4, (int[]){2, 2, 3, 4}),
                         P(g, c, "b", 4, (int[]){2, 2, 5, 4}), false, true);
    }
}

/* Broadcasting variants shared by add, sub, mul and div. */
static nn_tensor *binary_case(nn_graph *g, gc_ctx *c, nn_tensor *(*op)(nn_graph *, nn_tensor *,
                                                                        nn_tensor *),
                              bool divides)
{
    float lo = divides ? 0.5f : 0.1f, hi = divides ? 1.5f : 1.0f;
    int full[3] = {2, 3, 4};
    switch (c->variant) {
    case 0:
        return op(g, P(g, c, "a", 3, full), Paway(g, c, "b", 3, full, lo, hi));
    case 1: /* trailing operand over leading dims */
        return op(g, P(g, c, "a", 3, full), Paway(g, c, "b", 1, (int[]){4}, lo, hi));
    case 2: /* one per row: [B,T,D] op [B,T,1] */
        return op(g, P(g, c, "a", 3, full), Paway(g, c, "b", 3, (int[]){2, 3, 1}, lo, hi));
    case 3: /* both expand */
        return op(g, P(g, c, "a", 3, (int[]){2, 1, 4}),
                  Paway(g, c, "b", 3, (int[]){1, 3, 4}, lo, hi));
    case 4: /* the first operand expands */
        return op(g, P(g, c, "a", 1, (int[]){4}), Paway(g, c, "b", 3, full, lo, hi));
    default: { /* one tensor on both sides */
        nn_tensor *x = Paway(g, c, "x", 2, (int[]){3, 4}, lo, hi);
        return op(g, x, x);
    }
    }
}

static nn_tensor *case_add(nn_graph *g, gc_ctx *c)
{
    return binary_case(g, c, nn_add, false);
}

static nn_tensor *case_sub(nn_graph *g, gc_ctx *c)
{
    return binary_case(g, c, nn_sub, false);
}

static nn_tensor *case_mul(nn_graph *g, gc_ctx *c)
{
    return binary_case(g, c, nn_mul, false);
}

static nn_tensor *case_div(nn_graph *g, gc_ctx *c)
{
    return binary_case(g, c, nn_div, true);
}

static nn_tensor *case_scale(nn_graph *g, gc_ctx *c)
{
    return nn_scale(g, P(g, c, "x", 2, (int[]){3, 4}), -1.7f);
}

static nn_tensor *case_relu(nn_graph *g, gc_ctx *c)
{
    return nn_relu(g, Paway(g, c, "x", 2, (int[]){3, 5}, 0.05f, 1.0f));
}

static nn_tensor *case_gelu(nn_graph *g, gc_ctx *c)
{
    return nn_gelu(g, nn_scale(g, P(g, c, "x", 2, (int[]){3, 5}), 2.5f));
}

static nn_tensor *case_sigmoid(nn_graph *g, gc_ctx *c)
{
    return nn_sigmoid(g, nn_scale(g, P(g, c, "x", 2, (int[]){3, 5}), 3.0f));
}

static nn_tensor *case_tanh(nn_graph *g, gc_ctx *c)
{
    return nn_tanh(g, nn_scale(g, P(g, c, "x", 2, (int[]){3, 5}), 2.0f));
}

static nn_tensor *case_exp(nn_graph *g, gc_ctx *c)
{
    return nn_exp(g, P(g, c, "x", 2, (int[]){3, 5}));
}

static nn_tensor *case_softmax(nn_graph *g, gc_ctx *c)
{
    if (c->variant == 1)
        return nn_softmax(g, nn_scale(g, P(g, c, "x", 1, (int[]){6}), 3.0f));
    return nn_softmax(g, nn_scale(g, P(g, c, "x", 3, (int[]){2, 3, 5}), 3.0f));
}

static nn_tensor *case_log_softmax(nn_graph *g, gc_ctx *c)
{
    if (c->variant == 1)
        return nn_log_softmax(g, nn_scale(g, P(g, c, "x", 1, (int[]){6}), 3.0f));
    return nn_log_softmax(g, nn_scale(g, P(g, c, "x", 3, (int[]){2, 3, 5}), 3.0f));
}

static nn_tensor *case_layernorm(nn_graph *g, gc_ctx *c)
{
    nn_tensor *x = nn_scale(g, P(g, c, "x", 3, (int[]){2, 3, 6}), 2.0f);
    return nn_layernorm(g, x, P(g, c, "gamma", 1, (int[]){6}), P(g, c, "beta", 1, (int[]){6}),
                        1e-5f);
}

static nn_tensor *case_dropout(nn_graph *g, gc_ctx *c)
{
    return nn_dropout(g, P(g, c, "x", 2, (int[]){4, 5}), 0.3f);
}

static nn_tensor *case_embedding(nn_graph *g, gc_ctx *c)
{
    static const uint32_t idx[5] = {1, 4, 1, 0, 5};
    bool sparse = c->variant == 0;
    nn_param *t = par_make(c, "table", 2, (int[]){6, 3}, -1.0f, 1.0f, false, sparse);
    return nn_embedding(g, nn_param_node(g, t), idx, 5);
}

static nn_tensor *case_embedding_bag(nn_graph *g, gc_ctx *c)
{
    static const uint32_t idx[6] = {0, 2, 5, 2, 6, 1};
    static const uint32_t off[5] = {0, 2, 2, 5, 6}; /* bag 1 is empty */
    nn_param *t = par_make(c, "table", 2, (int[]){7, 3}, -1.0f, 1.0f, false, true);
    return nn_embedding_bag(g, nn_param_node(g, t), idx, 6, off, 4,
                            c->variant ? NN_BAG_MEAN : NN_BAG_SUM);
}

static nn_tensor *case_gather(nn_graph *g, gc_ctx *c)
{
    static const uint32_t idx[4] = {4, 0, 4, 2};
    if (c->variant == 1)
        return nn_gather(g, P(g, c, "x", 1, (int[]){5}), idx, 4);
    return nn_gather(g, P(g, c, "x", 3, (int[]){5, 2, 3}), idx, 4);
}

static nn_tensor *case_concat(nn_graph *g, gc_ctx *c)
{
    nn_tensor *xs[3] = {P(g, c, "a", 3, (int[]){2, 3, 2}), P(g, c, "b", 3, (int[]){2, 3, 1}),
                        P(g, c, "c", 3, (int[]){2, 3, 4})};
    if (c->variant == 1)
        xs[2] = xs[0]; /* one input twice */
    return nn_concat(g, xs, 3);
}

static nn_tensor *case_slice(nn_graph *g, gc_ctx *c)
{
    nn_tensor *x = P(g, c, "x", 2, (int[]){3, 6});
    if (c->variant == 0)
        return nn_slice(g, x, 2, 3);
    nn_tensor *parts[3];
    if (nn_split(g, x, 3, (int[]){1, 2, 3}, parts))
        return NULL;
    nn_tensor *rev[3] = {parts[2], parts[1], parts[0]};
    return nn_concat(g, rev, 3);
}

static nn_tensor *case_reshape(nn_graph *g, gc_ctx *c)
{
    if (c->variant == 0)
        return nn_reshape(g, P(g, c, "x", 2, (int[]){2, 6}), 2, (int[]){3, 4});
    /* x (not a parameter, so its gradient starts unallocated) feeds two
     * reshapes and a mul: the last reshape on the tape is lent x's
     * gradient buffer, the mul and the first reshape add into it */
    nn_tensor *x = nn_scale(g, P(g, c, "x", 2, (int[]){2, 6}), 1.5f);
    nn_tensor *a = nn_reshape(g, x, 1, (int[]){12});
    nn_tensor *b = nn_reshape(g, nn_mul(g, x, x), 1, (int[]){12});
    nn_tensor *d = nn_reshape(g, x, 3, (int[]){3, 2, 2});
    return nn_add(g, nn_add(g, a, b), nn_reshape(g, nn_scale(g, d, 2.0f), 1, (int[]){12}));
}

static nn_tensor *case_transpose(nn_graph *g, gc_ctx *c)
{
    return nn_transpose(g, P(g, c, "x", 3, (int[]){2, 3, 4}));
}

static nn_tensor *case_sum(nn_graph *g, gc_ctx *c)
{
    return nn_sum(g, P(g, c, "x", 2, (int[]){3, 4}));
}

static nn_tensor *case_mean(nn_graph *g, gc_ctx *c)
{
    return nn_mean(g, P(g, c, "x", 2, (int[]){3, 4}));
}

static nn_tensor *case_sum_last(nn_graph *g, gc_ctx *c)
{
    return nn_sum_last(g, P(g, c, "x", 3, (int[]){2, 3, 4}));
}

static nn_tensor *case_mean_last(nn_graph *g, gc_ctx *c)
{
    return nn_mean_last(g, P(g, c, "x", 3, (int[]){2, 3, 4}));
}

static nn_tensor *case_masked_fill(nn_graph *g, gc_ctx *c)
{
    static const uint8_t rows[6] = {0, 1, 0, 0, 1, 1};
    uint8_t full[24];
    for (int i = 0; i < 24; i++)
        full[i] = (uint8_t)(i % 3 == 0);
    nn_tensor *x = P(g, c, "x", 3, (int[]){2, 3, 4});
    if (c->variant == 0)
        return nn_masked_fill(g, x, rows, 3, (int[]){2, 3, 1}, 0.5f);
    return nn_masked_fill(g, x, full, 3, (int[]){2, 3, 4}, -2.0f);
}

static nn_tensor *case_rowdot(nn_graph *g, gc_ctx *c)
{
    nn_tensor *a = P(g, c, "a", 2, (int[]){3, 4});
    if (c->variant == 1)
        return nn_rowdot(g, a, a);
    return nn_rowdot(g, a, P(g, c, "b", 2, (int[]){3, 4}));
}

static nn_tensor *case_attention(nn_graph *g, gc_ctx *c)
{
    /* batch 1's key 0 is padding: in the causal variant its query 0 sees
     * no key at all */
    static const uint8_t valid[6] = {1, 1, 1, 0, 1, 1};
    int shape[3] = {2, 3, 4};
    nn_tensor *q = P(g, c, "q", 3, shape), *k = P(g, c, "k", 3, shape), *v = P(g, c, "v", 3, shape);
    switch (c->variant) {
    case 0:
        return nn_attention(g, q, k, v, 2, false, NULL);
    case 1:
        return nn_attention(g, q, k, v, 2, true, NULL);
    case 2:
        return nn_attention(g, q, k, v, 1, false, valid);
    case 3:
        return nn_attention(g, q, k, v, 2, true, valid);
    case 4: /* keys and values from a longer sequence (S = 5) */
        return nn_attention(g, q, P(g, c, "k5", 3, (int[]){2, 5, 4}),
                            P(g, c, "v5", 3, (int[]){2, 5, 4}), 4, false, NULL);
    default: /* self-attention on one tensor */
        return nn_attention(g, q, q, q, 2, true, NULL);
    }
}

static nn_tensor *case_gru(nn_graph *g, gc_ctx *c)
{
    static const int32_t lens[2][3] = {{4, 2, 3}, {4, 1, 0}};
    nn_tensor *x = P(g, c, "x", 3, (int[]){3, 4, 2});
    nn_tensor *wih = P(g, c, "w_ih", 2, (int[]){2, 9});
    nn_tensor *whh = P(g, c, "w_hh", 2, (int[]){3, 9});
    nn_tensor *bih = P(g, c, "b_ih", 1, (int[]){9});
    nn_tensor *bhh = P(g, c, "b_hh", 1, (int[]){9});
    return nn_gru(g, x, lens[c->variant], wih, whh, bih, bhh);
}

static nn_tensor *case_bce_logits(nn_graph *g, gc_ctx *c)
{
    nn_tensor *x = nn_scale(g, P(g, c, "x", 1, (int[]){6}), 3.0f);
    nn_param *y = par_make(c, "y", 1, (int[]){6}, 0.0f, 1.0f, false, false);
    return nn_bce_logits(g, x, nn_param_node(g, y));
}

static nn_tensor *case_softmax_ce(nn_graph *g, gc_ctx *c)
{
    static const uint32_t tg[4] = {1, NN_IGNORE, 4, 0};
    return nn_softmax_ce(g, nn_scale(g, P(g, c, "x", 2, (int[]){4, 5}), 2.0f), tg);
}

static nn_tensor *case_sampled_softmax_ce(nn_graph *g, gc_ctx *c)
{
    static const float shared[4] = {-1.0f, -2.0f, -0.5f, -3.0f};
    static const float per_row[12] = {-1.0f, -2.0f,     -0.5f, -3.0f, -0.2f, INFINITY,
                                      -1.0f, -1.5f,     -2.0f, -0.7f, -0.1f, -4.0f};
    static const uint8_t valid[3] = {1, 0, 1};
    nn_tensor *x = nn_scale(g, P(g, c, "x", 2, (int[]){3, 4}), 2.0f);
    if (c->variant == 0)
        return nn_sampled_softmax_ce(g, x, shared, false, NULL);
    return nn_sampled_softmax_ce(g, x, per_row, true, valid);
}

static nn_tensor *case_bpr(nn_graph *g, gc_ctx *c)
{
    return nn_bpr(g, nn_scale(g, P(g, c, "pos", 1, (int[]){5}), 2.0f),
                  nn_scale(g, P(g, c, "neg", 1, (int[]){5}), 2.0f));
}

static nn_tensor *case_mse(nn_graph *g, gc_ctx *c)
{
    return nn_mse(g, P(g, c, "a", 2, (int[]){2, 3}), P(g, c, "b", 2, (int[]){2, 3}));
}

static nn_tensor *case_kl_vae(nn_graph *g, gc_ctx *c)
{
    return nn_kl_vae(g, P(g, c, "mu", 2, (int[]){3, 4}), P(g, c, "logvar", 2, (int[]){3, 4}));
}

static const gc_case cases[] = {
    [NN_OP_LEAF] = {NULL, 0},
    [NN_OP_MATMUL] = {case_matmul, 9},
    [NN_OP_ADD] = {case_add, 6},
    [NN_OP_SUB] = {case_sub, 6},
    [NN_OP_MUL] = {case_mul, 6},
    [NN_OP_DIV] = {case_div, 6},
    [NN_OP_SCALE] = {case_scale, 1},
    [NN_OP_RELU] = {case_relu, 1},
    [NN_OP_GELU] = {case_gelu, 1},
    [NN_OP_SIGMOID] = {case_sigmoid, 1},
    [NN_OP_TANH] = {case_tanh, 1},
    [NN_OP_EXP] = {case_exp, 1},
    [NN_OP_SOFTMAX] = {case_softmax, 2},
    [NN_OP_LOG_SOFTMAX] = {case_log_softmax, 2},
    [NN_OP_LAYERNORM] = {case_layernorm, 1},
    [NN_OP_DROPOUT] = {case_dropout, 1},
    [NN_OP_EMBEDDING] = {case_embedding, 2},
    [NN_OP_EMBEDDING_BAG] = {case_embedding_bag, 2},
    [NN_OP_GATHER] = {case_gather, 2},
    [NN_OP_CONCAT] = {case_concat, 2},
    [NN_OP_SLICE] = {case_slice, 2},
    [NN_OP_RESHAPE] = {case_reshape, 2},
    [NN_OP_TRANSPOSE] = {case_transpose, 1},
    [NN_OP_SUM] = {case_sum, 1},
    [NN_OP_MEAN] = {case_mean, 1},
    [NN_OP_SUM_LAST] = {case_sum_last, 1},
    [NN_OP_MEAN_LAST] = {case_mean_last, 1},
    [NN_OP_MASKED_FILL] = {case_masked_fill, 2},
    [NN_OP_ROWDOT] = {case_rowdot, 2},
    [NN_OP_ATTENTION] = {case_attention, 6},
    [NN_OP_GRU] = {case_gru, 2},
    [NN_OP_BCE_LOGITS] = {case_bce_logits, 1},
    [NN_OP_SOFTMAX_CE] = {case_softmax_ce, 1},
    [NN_OP_SAMPLED_SOFTMAX_CE] = {case_sampled_softmax_ce, 2},
    [NN_OP_BPR] = {case_bpr, 1},
    [NN_OP_MSE] = {case_mse, 1},
    [NN_OP_KL_VAE] = {case_kl_vae, 1},
};
_Static_assert(sizeof cases / sizeof cases[0] == NN_OP_COUNT, "a gradient-check case per op");

/* ------------------------------------------------------------ driver */

static bool reaches_op(const nn_tensor *t, nn_op op, int depth)
{
    if (!t || depth > 64)
        return false;
    if (t->op == op)
        return true;
    for (int i = 0; i < t->nsrc; i++)
        if (reaches_op(t->src[i], op, depth + 1))
            return true;
    return false;
}

typedef struct {
    gc_ctx c;
    nn_op op;
} run_ctx;

static nn_tensor *build_run(nn_graph *g, void *ctx)
{
    run_ctx *r = ctx;
    return cases[r->op].build(g, &r->c);
}

/* Runs one variant of one op's case; returns the failures (0 = pass) and
 * prints the worst element when something fails. */
static size_t check_case(nn_graph *g, nn_op op, int variant, nn_gradcheck_report *rep)
{
    run_ctx r;
    memset(&r, 0, sizeof r);
    nn_params_init(&r.c.ps);
    ember_rng_seed(&r.c.rng, 1000u + (unsigned)op * 16u + (unsigned)variant);
    r.c.variant = variant;
    r.op = op;
    nn_graph_reset(g);
    nn_graph_seed(g, 7);
    nn_tensor *out = build_run(g, &r);
    if (!out)
        print_error("%s variant %d: build failed: %s\n", nn_ops[op].name, variant,
                    ember_last_error());
    assert_non_null(out);
    if (!reaches_op(out, op, 0))
        print_error("%s variant %d: the case does not use the op\n", nn_ops[op].name, variant);
    assert_true(reaches_op(out, op, 0));
    assert_true(r.c.ps.n > 0);
    nn_gradcheck_opts o;
    nn_gradcheck_opts_default(&o);
    o.seed = 7;
    int rc = nn_gradcheck(g, build_run, &r, r.c.ps.p, r.c.ps.n, &o, rep);
    if (rc)
        print_error("%s variant %d: %s\n", nn_ops[op].name, variant, ember_last_error());
    assert_int_equal(rc, EMBER_OK);
    if (rep->failed)
        print_error("%s variant %d: %zu of %zu elements off; worst %s[%zu] analytic %.6g numeric "
                    "%.6g\n",
                    nn_ops[op].name, variant, rep->failed, rep->checked, rep->worst_param,
                    rep->worst_index, rep->worst_analytic, rep->worst_numeric);
    nn_params_free(&r.c.ps);
    return rep->failed;
}

static void test_every_op_has_a_case(void **state)
{
    for (int op = 1; op < NN_OP_COUNT; op++) {
        if (!cases[op].build)
            print_error("op %s has no gradient-check case\n", nn_ops[op].name);
        assert_non_null(cases[op].build);
        assert_true(cases[op].variants >= 1);
    }
    assert_null(cases[NN_OP_LEAF].build);
}

static void test_gradients_of_every_op_match_finite_differences(void **state)
{
    nn_graph *g = nn_graph_new(0);
    assert_non_null(g);
    size_t failed = 0, checked = 0, runs = 0;
    for (int op = 1; op < NN_OP_COUNT; op++) {
        for (int v = 0; v < cases[op].variants; v++) {
            nn_gradcheck_report rep;
            failed += check_case(g, (nn_op)op, v, &rep);
            checked += rep.checked;
            runs++;
        }
    }
    print_message("gradient check: %zu op variants, %zu elements, %zu off\n", runs, checked,
                  failed);
    assert_int_equal(failed, 0);
    nn_graph_free(g);
}

/* The check must be able to fail: a build whose output is not what the
 * reverse pass differentiates (a parameter is changed by the build on
 * every call after the first, so the numeric gradient sees a different
 * function) is caught. */
typedef struct {
    nn_param *p;
    int calls;
} liar_ctx;

static nn_tensor *build_liar(nn_graph *g, void *ctx)
{
    liar_ctx *l = ctx;
    nn_tensor *x = nn_param_node(g, l->p);
    /* first call: y = x * x; later calls: y = 3 x * x (the numeric side) */
    nn_tensor *y = nn_mul(g, x, x);
    return l->calls++ ? nn_scale(g, y, 3.0f) : y;
}

static void test_gradcheck_detects_a_wrong_gradient(void **state)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "x", 1, (int[]){3}, false);
    assert_non_null(p);
    p->value[0] = 0.5f, p->value[1] = -1.0f, p->value[2] = 2.0f;
    liar_ctx l = {p, 0};
    nn_gradcheck_opts o;
    nn_gradcheck_opts_default(&o);
    nn_gradcheck_report rep;
    assert_int_equal(nn_gradcheck(g, build_liar, &l, &p, 1, &o, &rep), EMBER_OK);
    assert_int_equal(rep.checked, 3);
    assert_int_equal(rep.failed, 3);
    assert_true(fabs(rep.worst_numeric) > 2.5 * fabs(rep.worst_analytic));
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_gradcheck_samples_at_most_max_checks(void **state)
{
    nn_graph *g = nn_graph_new(0);
    run_ctx r;
    memset(&r, 0, sizeof r);
    nn_params_init(&r.c.ps);
    ember_rng_seed(&r.c.rng, 3);
    r.op = NN_OP_MATMUL;
    assert_non_null(build_run(g, &r));
    nn_gradcheck_opts o;
    nn_gradcheck_opts_default(&o);
    o.max_checks = 4;
    nn_gradcheck_report rep;
    assert_int_equal(nn_gradcheck(g, build_run, &r, r.c.ps.p, r.c.ps.n, &o, &rep), EMBER_OK);
    assert_int_equal(rep.checked, 8); /* 2 parameters x 4 */
    assert_int_equal(rep.failed, 0);
    nn_params_free(&r.c.ps);
    nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_has_a_case),
        cmocka_unit_test(test_gradients_of_every_op_match_finite_differences),
        cmocka_unit_test(test_gradcheck_detects_a_wrong_gradient),
        cmocka_unit_test(test_gradcheck_samples_at_most_max_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
