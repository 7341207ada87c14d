/*
 * The perceptron of qt_mlp.h: sgemm for every matrix product, plain loops for biases,
 * ReLU and softmax.  Weights are stored in x out, row-major, so a layer is Y = X W + b.
 */

#include "qt_mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

uint64_t qt_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void layer_dims(const qt_mlp_t *m, int l, int *in_p, int *out_p)
{
    *in_p = 0 == l ? m->in : m->hidden;
    *out_p = QT_MLP_LAYERS - 1 == l ? m->classes : m->hidden;
}

void qt_mlp_free(qt_mlp_t *m)
{
    for (int l = QT_MLP_LAYERS; l >= 0; --l) {
        free(m->delta[l]);
        free(m->act[l]);
    }
    free(m->velocity);
    free(m->grads);
    free(m->params);
    memset(m, 0, sizeof(*m));
}

/* Sets the weight/bias views and counts the parameters (params may be NULL to count). */
static size_t layout(qt_mlp_t *m)
{
    size_t off = 0;
    for (int l = 0; l < QT_MLP_LAYERS; ++l) {
        int in, out;
        layer_dims(m, l, &in, &out);
        if (NULL != m->params) {
            m->w[l] = m->params + off;
            m->gw[l] = m->grads + off;
            m->b[l] = m->params + off + (size_t) in * out;
            m->gb[l] = m->grads + off + (size_t) in * out;
        }
        off += (size_t) in * out + (size_t) out;
    }
    return off;
}

int qt_mlp_init(qt_mlp_t *m, int in, int hidden, int classes, int max_batch, uint64_t seed)
{
    uint64_t rng = seed;
    memset(m, 0, sizeof(*m));
    m->in = in;
    m->hidden = hidden;
    m->classes = classes;
    m->max_batch = max_batch;
    m->nparams = layout(m);
    m->params = calloc(m->nparams, sizeof(float));
    m->grads = calloc(m->nparams, sizeof(float));
    m->velocity = calloc(m->nparams, sizeof(float));
    for (int l = 0; l <= QT_MLP_LAYERS; ++l) {
        int width = 0 == l ? in : QT_MLP_LAYERS == l ? classes : hidden;
        m->act[l] = malloc((size_t) max_batch * width * sizeof(float));
        m->delta[l] = malloc((size_t) max_batch * width * sizeof(float));
        if (NULL == m->act[l] || NULL == m->delta[l]) {
            qt_mlp_free(m);
            return -1;
        }
    }
    if (NULL == m->params || NULL == m->grads || NULL == m->velocity) {
        qt_mlp_free(m);
        return -1;
    }
    layout(m);
    for (int l = 0; l < QT_MLP_LAYERS; ++l) {
        int fan_in, out;
        float limit;
        layer_dims(m, l, &fan_in, &out);
        limit = sqrtf(6.0f / (float) fan_in);
        for (size_t i = 0; i < (size_t) fan_in * out; ++i) {
            float u = (float) (qt_rng_next(&rng) >> 40) * 0x1p-24f; /* [0, 1) */
            m->w[l][i] = (2.0f * u - 1.0f) * limit;
        }
    }
    return 0;
}

/* y[n x out] = x[n x in] W + b, then ReLU unless last. */
static void layer_forward(qt_mlp_t *m, int l, int n)
{
    int in, out;
    float *y = m->act[l + 1];
    layer_dims(m, l, &in, &out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, m->act[l], in,
                m->w[l], out, 0.0f, y, out);
    for (int i = 0; i < n; ++i) {
        float *row = y + (size_t) i * out;
        for (int j = 0; j < out; ++j) {
            float v = row[j] + m->b[l][j];
            row[j] = QT_MLP_LAYERS - 1 == l || 0.0f < v ? v : 0.0f;
        }
    }
}

static void softmax_rows(float *z, int n, int k)
{
    for (int i = 0; i < n; ++i) {
        float *row = z + (size_t) i * k, mx = row[0], sum = 0.0f;
        for (int j = 1; j < k; ++j) {
            mx = row[j] > mx ? row[j] : mx;
        }
        for (int j = 0; j < k; ++j) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        for (int j = 0; j < k; ++j) {
            row[j] /= sum;
        }
    }
}

void qt_mlp_forward(qt_mlp_t *m, int n)
{
    for (int l = 0; l < QT_MLP_LAYERS; ++l) {
        layer_forward(m, l, n);
    }
    softmax_rows(m->act[QT_MLP_LAYERS], n, m->classes);
}

/* From delta[l+1] (gradient at layer l's output pre-activation): weight and bias
 * gradients of layer l, and delta[l] for the layer below (ReLU mask of act[l]). */
static void layer_backward(qt_mlp_t *m, int l, int n)
{
    int in, out;
    const float *d = m->delta[l + 1];
    layer_dims(m, l, &in, &out);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, m->act[l], in, d,
                out, 0.0f, m->gw[l], out);
    for (int j = 0; j < out; ++j) {
        m->gb[l][j] = 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < out; ++j) {
            m->gb[l][j] += d[(size_t) i * out + j];
        }
    }
    if (0 == l) {
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, d, out, m->w[l], out,
                0.0f, m->delta[l], in);
    for (size_t i = 0; i < (size_t) n * in; ++i) {
        m->delta[l][i] = 0.0f < m->act[l][i] ? m->delta[l][i] : 0.0f;
    }
}

static double cross_entropy(const float *probs, int label)
{
    return -log(fmax((double) probs[label], 1e-30));
}

double qt_mlp_backward(qt_mlp_t *m, int n, const uint8_t *labels, float scale)
{
    int k = m->classes;
    const float *p = m->act[QT_MLP_LAYERS];
    float *d = m->delta[QT_MLP_LAYERS];
    double loss = 0.0;
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < k; ++j) {
            float pij = p[(size_t) i * k + j];
            d[(size_t) i * k + j] = (pij - (labels[i] == j ? 1.0f : 0.0f)) / scale;
        }
        loss += cross_entropy(p + (size_t) i * k, labels[i]);
    }
    for (int l = QT_MLP_LAYERS - 1; l >= 0; --l) {
        layer_backward(m, l, n);
    }
    return loss;
}

void qt_mlp_sgd(qt_mlp_t *m, float lr, float momentum, float wd)
{
    for (size_t i = 0; i < m->nparams; ++i) {
        float v = momentum * m->velocity[i] + m->grads[i] + wd * m->params[i];
        m->velocity[i] = v;
        m->params[i] -= lr * v;
    }
}

int qt_mlp_score(qt_mlp_t *m, int n, const uint8_t *labels, double *loss_p)
{
    int k = m->classes, hits = 0;
    qt_mlp_forward(m, n);
    for (int i = 0; i < n; ++i) {
        const float *row = m->act[QT_MLP_LAYERS] + (size_t) i * k;
        int best = 0;
        for (int j = 1; j < k; ++j) {
            best = row[j] > row[best] ? j : best;
        }
        hits += best == labels[i];
        *loss_p += cross_entropy(row, labels[i]);
    }
    return hits;
}

uint64_t qt_mlp_hash(const qt_mlp_t *m)
{
    const uint8_t *b = (const uint8_t *) m->params;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m->nparams * sizeof(float); ++i) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}
