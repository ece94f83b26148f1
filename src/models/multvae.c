/*
 * multvae.c — Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara
 * 2018, "Variational Autoencoders for Collaborative Filtering", WWW): a
 * user is the multi-hot vector x of their items, L2-normalised and
 * dropped out on the way in; an MLP encodes it, a decoder gives logits
 * over every item, and the loss is the multinomial log-likelihood
 *   -sum_i x_i log softmax(f(z))_i
 * plus, for the VAE, beta KL(q(z|x) || N(0, I)) with beta rising linearly
 * from 0 to anneal_cap over anneal_steps optimizer steps (0: anneal_cap
 * from the start, the default).
 *
 * Layout as RecBole 1.2.1 (the like-for-like peer):
 *   encoder  x -> tanh(W1 x + b1) [hidden] -> W2 . + b2
 *            [2 latent: mu and log var (VAE) | latent (DAE)]
 *   decoder  z -> tanh(W3 z + b3) [hidden] -> W4 . + b4  [items]
 *   VAE: z = mu + eps exp(logvar / 2), eps ~ N(0, noise^2), in training;
 *   z = mu when scoring.
 * The input layer is sparse: W1 x is the sum of the rows of W1 of the
 * user's kept items times 1 / ((1 - dropout) sqrt(n_u)) (an embedding
 * bag), so its cost follows the user's history, not the catalogue.
 * Weights start Xavier-normal (as RecBole); the output bias b4 starts at
 * log(1 + count_i), the popularity prior, which the softmax would
 * otherwise spend its first epochs learning.
 *
 * An epoch is every user with a training item once, in shuffled
 * mini-batches (RecBole: all users in one batch).  The shared trainer
 * (deep_train.c) runs Adam, the moving average of the weights that
 * scoring uses, early stopping on valid NDCG@10 and the best-epoch
 * snapshot.
 *
 * Scoring a query is one forward pass of its history (stored + brought),
 * written out as row sums and matrix-vector products (no graph, so it is
 * reentrant and cheap for one user): a new user or a session needs no
 * retraining, and a known user's history given as a new user's scores
 * exactly as the known user.  Logits are the scores (softmax is monotone).
 * similar(i) scores the one-item history [i].
 */
#include "core/kernels.h"
#include "models/deep_train.h"
#include "nn/params_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t hidden;
    int64_t latent;
    double dropout;
    double anneal_cap;
    int64_t anneal_steps;
    double noise;
    DEEP_PARAM_FIELDS;
} vae_params;

/* Defaults chosen on the ML-100K general split's valid set (mean valid
 * NDCG@10 over 3 seeds; RecBole's defaults as the start, which give
 * 0.2437 here): a KL weight of 0.5 from the first step (RecBole anneals
 * towards 0.2 over 200,000 steps, about 0 in practice; 0.2 constant:
 * 0.2427), mini-batches of 256 users at lr 0.002 (RecBole: all 943 users
 * in one step at lr 0.001, best after ~130 steps), scoring with the
 * moving average of the weights at 0.99 a step (0.2566 against 0.2513
 * without; 0.9: 0.2519, 0.95: 0.2505, 0.97: 0.2509), hidden 600 (300:
 * 0.2468, 400: 0.2465), latent 64 (128: 0.2446), input dropout 0.5 (0.7:
 * 0.2470); validation every 5 epochs (the averaged curve is smooth) with
 * patience 2 (10 epochs, as RecBole's patience of 10).  Mult-DAE: input
 * dropout 0.7 (0.5: 0.2434, 0.8: 0.2456 without averaging), lr 0.002 and
 * averaging 0.99 (0.2569; lr 0.001: 0.2561). */
static const model_param vae_param_table[] = {
    {"hidden", PARAM_INT, offsetof(vae_params, hidden), "600", 1, 16384, NULL,
     "width of the encoder's and the decoder's hidden layer"},
    {"latent", PARAM_INT, offsetof(vae_params, latent), "64", 1, 4096, NULL,
     "dimension of z (the encoder outputs its mean and log variance)"},
    {"dropout", PARAM_FLOAT, offsetof(vae_params, dropout), "0.5", 0, 0.95, NULL,
     "dropout rate of the input items"},
    {"anneal_cap", PARAM_FLOAT, offsetof(vae_params, anneal_cap), "0.5", 0, 10, NULL,
     "the largest weight beta of the KL term"},
    {"anneal_steps", PARAM_INT, offsetof(vae_params, anneal_steps), "0", 0, 1000000000,
     NULL, "beta = anneal_cap * min(1, step / anneal_steps) (0: anneal_cap from the start)"},
    {"noise", PARAM_FLOAT, offsetof(vae_params, noise), "1", 0, 10, NULL,
     "standard deviation of eps in z = mu + eps exp(logvar / 2) (1: the paper; RecBole 0.01)"},
    DEEP_PARAMS(vae_params, "300", "256", "0.002", "1", "0", "0.99", "2", "5"),
};

static const model_param dae_param_table[] = {
    {"hidden", PARAM_INT, offsetof(vae_params, hidden), "600", 1, 16384, NULL,
     "width of the encoder's and the decoder's hidden layer"},
    {"latent", PARAM_INT, offsetof(vae_params, latent), "64", 1, 4096, NULL,
     "dimension of the code between encoder and decoder"},
    {"dropout", PARAM_FLOAT, offsetof(vae_params, dropout), "0.7", 0, 0.95, NULL,
     "dropout rate of the input items"},
    DEEP_PARAMS(vae_params, "300", "256", "0.002", "1", "0", "0.99", "2", "5"),
};

typedef struct {
    bool variational;
    size_t n_items, hidden, latent, enc_out;
    nn_params ps;
    nn_param *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4;
} vae_state;

static bool is_vae(const ember_model *m)
{
    return m->ops->params == vae_param_table;
}

static void vae_destroy(ember_model *m)
{
    vae_state *s = m->state;
    if (!s)
        return;
    nn_params_free(&s->ps);
    free(s);
    m->state = NULL;
}

enum { VAE_N_PARAMS = 8 };

/* The parameters for the hyper-parameters and catalogue of m, in the
 * order of vae_state's w1 .. b4. */
static int vae_specs(const ember_model *m, nn_param_spec *sp)
{
    const vae_params *p = m->params;
    if (m->n_items == 0 || m->n_items > INT32_MAX)
        return ember_fail(EMBER_EINVAL, "%s: %zu items", m->ops->name, m->n_items);
    int ni = (int)m->n_items, h = (int)p->hidden, l = (int)p->latent;
    int eo = is_vae(m) ? 2 * l : l;
    const nn_param_spec s[VAE_N_PARAMS] = {
        {"enc.w1", 2, {ni, h}, false}, {"enc.b1", 1, {h}, false},
        {"enc.w2", 2, {h, eo}, false}, {"enc.b2", 1, {eo}, false},
        {"dec.w1", 2, {l, h}, false},  {"dec.b1", 1, {h}, false},
        {"dec.w2", 2, {h, ni}, false}, {"dec.b2", 1, {ni}, false},
    };
    memcpy(sp, s, sizeof s);
    return EMBER_OK;
}

/* The state with zero parameters. */
static int vae_build(ember_model *m, const nn_param_spec *sp)
{
    const vae_params *p = m->params;
    vae_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    nn_params_init(&s->ps);
    s->variational = is_vae(m);
    s->n_items = m->n_items;
    s->hidden = (size_t)p->hidden;
    s->latent = (size_t)p->latent;
    s->enc_out = s->variational ? 2 * s->latent : s->latent;
    nn_param *out[VAE_N_PARAMS];
    int st = nn_params_add_specs(&s->ps, sp, VAE_N_PARAMS, out);
    if (st)
        return st;
    s->w1 = out[0], s->b1 = out[1], s->w2 = out[2], s->b2 = out[3];
    s->w3 = out[4], s->b3 = out[5], s->w4 = out[6], s->b4 = out[7];
    return EMBER_OK;
}

/* ---------------------------------------------------------------- fit */

typedef struct {
    const ember_model *m;
    vae_state *s;
    const vae_params *p;
    const ember_dataset *train;
    uint32_t *users; /* the users with a training item: the examples */
} vae_ctx;

/* Xavier normal (RecBole's init of these models): N(0, 2 / (fan_in + fan_out)). */
static void init_xavier_normal(nn_param *w, ember_rng *rng)
{
    nn_init_normal(w, rng, 0.0f, (float)sqrt(2.0 / (double)(w->rows + w->cols)));
}

static nn_tensor *linear(nn_graph *g, nn_tensor *x, nn_param *w, nn_param *b)
{
    return nn_add(g, nn_matmul(g, x, nn_param_node(g, w), false, false), nn_param_node(g, b));
}

static nn_tensor *vae_loss(void *ctx, const deep_batch *bt)
{
    vae_ctx *c = ctx;
    const vae_state *s = c->s;
    const ember_dataset *tr = c->train;
    nn_graph *g = bt->g;
    int B = (int)bt->n, ni = (int)s->n_items;
    size_t total = 0;
    for (size_t b = 0; b < bt->n; b++)
        total += data_user_len(tr, c->users[bt->idx[b]]);
    uint32_t *kept = nn_graph_alloc(g, EMBER_MAX(total, 1), sizeof *kept);
    uint32_t *off = nn_graph_alloc(g, bt->n + 1, sizeof *off);
    nn_tensor *scale = nn_input(g, 2, (int[]){B, 1}, NULL, false);
    nn_tensor *x = nn_input(g, 2, (int[]){B, ni}, NULL, false);
    if (!kept || !off || !scale || !x)
        return NULL;
    /* the input: dropout on the multi-hot row, L2 normalisation, and the
     * kept-item scale 1 / (1 - p) of inverted dropout */
    const double p = c->p->dropout;
    size_t n_kept = 0;
    off[0] = 0;
    for (size_t b = 0; b < bt->n; b++) {
        uint32_t u = c->users[bt->idx[b]];
        size_t len = data_user_len(tr, u), distinct = 0;
        const uint32_t *items = tr->u_item + tr->u_ptr[u];
        for (size_t k = 0; k < len; k++) {
            if (k > 0 && items[k] == items[k - 1]) /* a repeated pair counts once */
                continue;
            distinct++;
            x->data[b * (size_t)ni + items[k]] = 1.0f;
            if (p == 0.0 || ember_rng_uniform(bt->rng) >= p)
                kept[n_kept++] = items[k];
        }
        off[b + 1] = (uint32_t)n_kept;
        scale->data[b] = (float)(1.0 / ((1.0 - p) * sqrt((double)distinct)));
    }
    nn_tensor *bag = nn_embedding_bag(g, nn_param_node(g, s->w1), kept, n_kept, off, bt->n,
                                      NN_BAG_SUM);
    nn_tensor *h = nn_tanh(g, nn_add(g, nn_mul(g, bag, scale), nn_param_node(g, s->b1)));
    nn_tensor *e = linear(g, h, s->w2, s->b2);
    nn_tensor *z = e, *kl = NULL;
    if (s->variational) {
        int l = (int)s->latent;
        nn_tensor *mu = nn_slice(g, e, 0, l), *logvar = nn_slice(g, e, l, l);
        nn_tensor *eps = nn_input(g, 2, (int[]){B, l}, NULL, false);
        if (!eps)
            return NULL;
        nn_fill_normal(eps->data, eps->n, bt->rng, 0.0f, (float)c->p->noise);
        z = nn_add(g, mu, nn_mul(g, eps, nn_exp(g, nn_scale(g, logvar, 0.5f))));
        const vae_params *vp = c->p;
        double beta = vp->anneal_steps > 0
                          ? EMBER_MIN(vp->anneal_cap,
                                      vp->anneal_cap * (double)bt->step / (double)vp->anneal_steps)
                          : vp->anneal_cap;
        kl = nn_scale(g, nn_kl_vae(g, mu, logvar), (float)beta);
    }
    nn_tensor *d = nn_tanh(g, linear(g, z, s->w3, s->b3));
    nn_tensor *logits = linear(g, d, s->w4, s->b4);
    nn_tensor *ll = nn_sum(g, nn_mul(g, nn_log_softmax(g, logits), x));
    nn_tensor *loss = nn_scale(g, ll, -1.0f / (float)B);
    return kl ? nn_add(g, loss, kl) : loss;
}

static int vae_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                   const ember_fit_opts *o)
{
    (void)valid;
    const vae_params *p = m->params;
    nn_param_spec sp[VAE_N_PARAMS];
    int st = vae_specs(m, sp);
    if (st || (st = vae_build(m, sp)))
        return st;
    vae_state *s = m->state;
    ember_rng rng;
    ember_rng_seed(&rng, o->seed);
    init_xavier_normal(s->w1, &rng);
    init_xavier_normal(s->w2, &rng);
    init_xavier_normal(s->w3, &rng);
    init_xavier_normal(s->w4, &rng);
    /* the output bias starts at the log of each item's training count (the
     * softmax then starts from the popularity prior, not the uniform one):
     * the same optimum, reached in fewer epochs */
    for (size_t i = 0; i < m->n_items; i++)
        s->b4->value[i] = logf((float)m->item_count[i] + 1.0f);
    vae_ctx c = {.m = m, .s = s, .p = p, .train = train};
    c.users = ember_alloc(EMBER_MAX(train->n_users, 1), sizeof *c.users);
    if (!c.users)
        return EMBER_ENOMEM;
    size_t n = 0;
    for (size_t u = 0; u < train->n_users; u++)
        if (data_user_len(train, (uint32_t)u) > 0)
            c.users[n++] = (uint32_t)u;
    deep_train_cfg cfg;
    DEEP_CFG(&cfg, p);
    deep_model_fns fns = {.loss = vae_loss};
    st = deep_train(m, &s->ps, &fns, &c, n, &cfg, o, NULL);
    free(c.users);
    return st;
}

/* ------------------------------------------------------------ scoring */

static void tanh_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

/* The decoder's logits for the unique items[0..n) (sorted). */
static int forward_items(const vae_state *s, const uint32_t *items, size_t n, float *out)
{
    const ember_kernel_table *K = ember_kernels();
    size_t H = s->hidden, L = s->latent, E = s->enc_out, ni = s->n_items;
    float *buf = ember_alloc(2 * H + E, sizeof *buf);
    if (!buf)
        return EMBER_ENOMEM;
    float *h = buf, *e = buf + H, *d = buf + H + E;
    memset(h, 0, H * sizeof *h);
    K->add_rows(h, H, s->w1->value, H, items, NULL, n);
    float scale = n ? (float)(1.0 / sqrt((double)n)) : 0.0f;
    for (size_t k = 0; k < H; k++)
        h[k] = h[k] * scale + s->b1->value[k];
    tanh_inplace(h, H);
    memcpy(e, s->b2->value, E * sizeof *e);
    for (size_t k = 0; k < H; k++)
        K->axpy(h[k], s->w2->value + k * E, e, E);
    memcpy(d, s->b3->value, H * sizeof *d);
    for (size_t k = 0; k < L; k++) /* z = mu, the first L outputs */
        K->axpy(e[k], s->w3->value + k * H, d, H);
    tanh_inplace(d, H);
    memcpy(out, s->b4->value, ni * sizeof *out);
    for (size_t k = 0; k < H; k++)
        K->axpy(d[k], s->w4->value + k * ni, out, ni);
    free(buf);
    return EMBER_OK;
}

static int vae_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const vae_state *s = m->state;
    model_hist_view v = model_query_history(m, q);
    size_t n = v.na + v.nb;
    uint32_t *items = ember_alloc(EMBER_MAX(n, 1), sizeof *items);
    if (!items)
        return EMBER_ENOMEM;
    memcpy(items, v.a, v.na * sizeof *items);
    memcpy(items + v.na, v.b, v.nb * sizeof *items);
    size_t w = ember_sort_unique_u32(items, n);
    int st = forward_items(s, items, w, out);
    free(items);
    return st;
}

static int vae_similar(const ember_model *m, uint32_t item, float *out)
{
    return forward_items(m->state, &item, 1, out);
}

/* ---------------------------------------------------------- the file */

static int vae_save(const ember_model *m, mf_writer *w)
{
    const vae_state *s = m->state;
    return nn_params_save(w, m->ops->name, &s->ps);
}

static int vae_load(ember_model *m, const mf_reader *r)
{
    nn_param_spec sp[VAE_N_PARAMS];
    int st = vae_specs(m, sp);
    if (st)
        return EMBER_ECORRUPT;
    if ((st = nn_params_check(r, m->ops->name, sp, VAE_N_PARAMS)) || (st = vae_build(m, sp)))
        return st == EMBER_ENOMEM ? st : EMBER_ECORRUPT;
    vae_state *s = m->state;
    return nn_params_load(r, m->ops->name, &s->ps);
}

const ember_model_ops model_multvae = {
    .name = "multvae",
    .summary = "Mult-VAE (Liang et al. 2018): variational autoencoder of the user's items, "
               "multinomial likelihood",
    .params = vae_param_table,
    .n_params = EMBER_ARRAY_LEN(vae_param_table),
    .params_size = sizeof(vae_params),
    .fit = vae_fit,
    .score_all = vae_score_all,
    .similar = vae_similar,
    .save = vae_save,
    .load = vae_load,
    .destroy = vae_destroy,
};

const ember_model_ops model_multdae = {
    .name = "multdae",
    .summary = "Mult-DAE (Liang et al. 2018): denoising autoencoder of the user's items, "
               "multinomial likelihood",
    .params = dae_param_table,
    .n_params = EMBER_ARRAY_LEN(dae_param_table),
    .params_size = sizeof(vae_params),
    .fit = vae_fit,
    .score_all = vae_score_all,
    .similar = vae_similar,
    .save = vae_save,
    .load = vae_load,
    .destroy = vae_destroy,
};
