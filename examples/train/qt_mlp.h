/*
 * A 3-layer perceptron (in - hidden - hidden - classes, ReLU, softmax cross-entropy) on
 * OpenBLAS sgemm, with all parameters and all gradients in one contiguous buffer each,
 * so a trainer can reduce the gradients with a single MPI_Allreduce.  Deterministic:
 * the same inputs give the same bits (with single-threaded OpenBLAS).
 */

#ifndef QT_MLP_H
#define QT_MLP_H

#include <stddef.h>
#include <stdint.h>

#define QT_MLP_LAYERS 3

typedef struct qt_mlp {
    int in, hidden, classes, max_batch;
    size_t nparams;
    float *params, *grads, *velocity;  /* nparams each, same layout */
    float *w[QT_MLP_LAYERS], *b[QT_MLP_LAYERS];   /* views into params */
    float *gw[QT_MLP_LAYERS], *gb[QT_MLP_LAYERS]; /* views into grads */
    float *act[QT_MLP_LAYERS + 1];   /* act[0] input, act[3] logits/probabilities */
    float *delta[QT_MLP_LAYERS + 1]; /* gradient w.r.t. the pre-activation of layer l */
} qt_mlp_t;

/* Allocates and initialises (He-uniform weights from seed, zero biases). 0 on success. */
int qt_mlp_init(qt_mlp_t *m, int in, int hidden, int classes, int max_batch, uint64_t seed);
void qt_mlp_free(qt_mlp_t *m);

/* Forward pass of n <= max_batch inputs already in m->act[0]; leaves the softmax
 * probabilities in m->act[3]. */
void qt_mlp_forward(qt_mlp_t *m, int n);
/* Backward pass after qt_mlp_forward: m->grads = (1/scale) * sum over the n examples of
 * the gradient of their loss.  Returns the summed cross-entropy of the n examples. */
double qt_mlp_backward(qt_mlp_t *m, int n, const uint8_t *labels, float scale);
/* velocity = momentum * velocity + grads + wd * params; params -= lr * velocity. */
void qt_mlp_sgd(qt_mlp_t *m, float lr, float momentum, float wd);
/* Forward pass of the n examples in act[0]: returns how many are classified right
 * (argmax) and adds their summed cross-entropy to *loss_p. */
int qt_mlp_score(qt_mlp_t *m, int n, const uint8_t *labels, double *loss_p);

/* 64-bit FNV-1a of the parameter bytes. */
uint64_t qt_mlp_hash(const qt_mlp_t *m);

/* Deterministic RNG (splitmix64) shared by the model and the trainer. */
uint64_t qt_rng_next(uint64_t *state);

#endif
