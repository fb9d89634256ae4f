/* cli.h - the catdog command line: one function per sub-command.  Each
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef CATDOG_CLI_H
#define CATDOG_CLI_H

#include "cnn.h"

int cmd_classify(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_maps(int argc, char **argv);
int cmd_cam(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_filters(int argc, char **argv);

/* The model used when --model is not given: $CATDOG_MODEL if set, else
 * the installed default (CATDOG_DATADIR) when readable, else the source
 * tree's weights/catdog.safetensors (for an uninstalled build): the core's
 * cnn_default_model() rule, which the plug-in follows too. */
const char *cli_default_model(void);

/* The conv layer called name (cnn_model_find_conv()): its index in
 * m->layers in *layer and its tap in *tap (either may be NULL); when
 * there is none, a usage error of command cmd that lists the model's conv
 * layers (so that the next try works).  Returns CLI_OK or CLI_USAGE
 * (CLI_FAILED when out of memory). */
int cli_conv_layer(const cnn_model *m, const char *cmd, const char *model_path,
                   const char *name, int *layer, int *tap);

/* For the commands that look into the network on one IMAGE (cam, maps):
 * runs it with an input tensor of its own, freed again since the taps
 * keep what they look at (see cli_run_image()).  Reports failures;
 * returns CLI_OK or CLI_FAILED. */
int cli_run_one_image(const cnn_model *m, cnn_net *net, const char *image, float *logit);

/* status, or CLI_FAILED after saying so when what was printed could not
 * all be written (a full disk, a closed pipe). */
int cli_check_stdout(int status);

/* catdog bench --train (bench_train.c): `steps` timed training steps of
 * m (trained in place) at batch size batch on the kernels of isa, and a
 * table of each layer's forward and backward time; peak is one thread's
 * measured FMA peak in FLOP/s.  Returns CLI_OK or CLI_FAILED. */
int cli_bench_train(cnn_model *m, int isa, int precision, int threads, int batch, int steps,
                    double peak);

/* Images per batch of the nets that compute occlusion maps and the trust
 * checks (cam.c, cam_check.c, bench_explain.c). */
#define CLI_EXPLAIN_BATCH 16

/* catdog cam --check (cam_check.c): the trust table of each method (all
 * three unless method_given) on the images; tap is Grad-CAM's conv tap,
 * threads < 0 keeps the core's default.  Returns CLI_OK or CLI_FAILED. */
int cli_cam_check(const cnn_model *m, int tap, int threads, bool method_given,
                  cnn_explain_method method, const cnn_occlusion_options *occlusion,
                  const cnn_ig_options *ig, const char *const *images, int n_images);

/* catdog bench (bench_explain.c): the time of an occlusion map (window
 * 15, stride 8, gray) of input on `threads` threads, one line.  Returns
 * CLI_OK or CLI_FAILED. */
int cli_bench_occlusion(const cnn_model *m, const cnn_net_options *no, int threads,
                        const float *input);

/* catdog bench (bench_explain.c): images per second of the backward pass
 * to the input of the logit, the scalar reference (cnn_model_input_gradient,
 * one thread) and the fast batched one (cnn_grad) at batch size batch in
 * f32 and bf16 on each thread count, then the time of an
 * integrated-gradients map.  Returns CLI_OK or CLI_FAILED. */
int cli_bench_gradient(const cnn_model *m, const int *threads, int n_threads, int batch,
                       const float *input);

/* catdog bench --filters LAYER (bench_filters.c): the time of the
 * pictures of every channel of that conv layer on each thread count,
 * precision -1 for cnn_filters_options_init()'s.  Returns CLI_OK,
 * CLI_USAGE (no such conv layer) or CLI_FAILED. */
int cli_bench_filters(const cnn_model *m, const char *model_path, const char *layer_name,
                      const int *threads, int n_threads, int precision);

#endif
