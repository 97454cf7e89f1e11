# The C kernels of every op (micrograd/_kernels.h), for the compiled engine and tape.
cdef extern from "_kernels.h" nogil:
    enum:
        MG_LEAF
        MG_ADD
        MG_MUL
        MG_POWC
        MG_POW
        MG_RELU
        MG_TANH
        MG_EXP
        MG_LOG
        MG_SIGMOID
        MG_ABS
        MG_N_OPS
        MG_OK
        MG_RAISES
        MG_UNKNOWN_OP
    const char *MG_OP_NAMES

    double mg_add(double a, double b)
    double mg_mul(double a, double b)
    int mg_pow(double x, double k, double *out)
    double mg_relu(double x)
    double mg_relu_da(double out)
    double mg_tanh(double x)
    int mg_exp(double x, double *out)
    int mg_log(double x, double *out)
    double mg_sigmoid(double x)
    double mg_abs(double x)
    int mg_arity(int op)
    int mg_forward(int op, double x, double y, double *out)
    int mg_local_grads(int op, double x, double y, double out, double *da, double *db)
    int mg_backward(int op, double x, double y, double out, double g, double *ga, double *gb)
