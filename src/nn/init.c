/*
 * init.c — seeded initializers for parameters and raw arrays: Xavier/Glorot
 * uniform, normal, uniform, zeros and constants.  Every draw comes from the
 * caller's ember_rng in index order, so a seed fixes the values.
 *
 * Xavier/Glorot: Glorot & Bengio, "Understanding the difficulty of
 * training deep feedforward neural networks", AISTATS 2010:
 * U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
 */
#include "nn/nn.h"

#include <math.h>
#include <string.h>

void nn_fill_xavier_uniform(float *x, size_t rows, size_t cols, ember_rng *rng, float gain)
{
    double a = gain * sqrt(6.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows * cols; i++)
        x[i] = (float)((2.0 * ember_rng_uniform(rng) - 1.0) * a);
}

void nn_fill_normal(float *x, size_t n, ember_rng *rng, float mean, float std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * ember_rng_normal(rng));
}

void nn_init_xavier_uniform(nn_param *p, ember_rng *rng, float gain)
{
    nn_fill_xavier_uniform(p->value, p->rows, p->cols, rng, gain);
}

void nn_init_normal(nn_param *p, ember_rng *rng, float mean, float std)
{
    nn_fill_normal(p->value, p->n, rng, mean, std);
}

void nn_init_uniform(nn_param *p, ember_rng *rng, float lo, float hi)
{
    for (size_t i = 0; i < p->n; i++)
        p->value[i] = (float)(lo + (hi - lo) * ember_rng_uniform(rng));
}

void nn_init_zeros(nn_param *p)
{
    memset(p->value, 0, p->n * sizeof(float));
}

void nn_init_const(nn_param *p, float value)
{
    for (size_t i = 0; i < p->n; i++)
        p->value[i] = value;
}
