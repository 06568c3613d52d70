/* A shared object that is not a NCCL net plugin: it exports a symbol with
 * a similar name, but no ncclNetPlugin_v7 ... v11 table. */
int ncclNetPlugin_v6_lookalike = 6;

int not_a_plugin_answer(void) { return 42; }
