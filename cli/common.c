/* common.c - messages, option parsing and model opening shared by the
 * catdog sub-commands. */
#include "common.h"
#include "cli.h"
#include "i18n.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MODEL_FILE "catdog.safetensors"

const char *cli_default_model(void)
{
    static const char *const fallbacks[] = {
        CATDOG_DATADIR "/" MODEL_FILE,         /* installed */
        CATDOG_SRCDIR "/weights/" MODEL_FILE,  /* an uninstalled build */
    };
    static char *path; /* found once, kept for the process's life */
    if (!path &&
        cnn_default_model(getenv("CATDOG_MODEL"), NULL, fallbacks, 2, &path) != CNN_OK)
        return fallbacks[1];
    return path;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("catdog: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *cli_without_file(const char *file, const char *message)
{
    size_t n = strlen(file);
    if (!message || !*message) return _("failed");
    if (strncmp(message, file, n) == 0 && message[n] == ':' && message[n + 1] == ' ')
        return message + n + 2;
    return message;
}

void cli_file_error(const char *file, const char *message)
{
    cli_error("%s: %s", file, cli_without_file(file, message));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "catdog %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fprintf(stderr, _("(see 'catdog help %s')"), cmd);
    fputc('\n', stderr);
    return CLI_USAGE;
}

void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv,
                     const cli_option *options, int common, const char *usage)
{
    p->cmd = cmd;
    p->usage = usage;
    p->common = common;
    p->model = NULL;
    p->threads = -1;
    p->argc = argc;
    p->argv = argv;
    p->next = 1;
    p->operands_only = false;
    p->options = options;
}

/* The common options, in the order of their CLI_COMMON_* bits; their ids
 * are above any command's own. */
enum { ID_MODEL = 1000, ID_THREADS, ID_HELP };

static const cli_option common_options[] = {
    {"model", 'm', true, ID_MODEL},
    {"threads", 't', true, ID_THREADS},
    {"help", 'h', false, ID_HELP},
};

/* Whether o is called name (len bytes), or short_name when name is NULL. */
static bool is_option(const cli_option *o, const char *name, size_t len, char short_name)
{
    if (!name) return o->short_name && o->short_name == short_name;
    return strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0;
}

/* The command's own option of that name, else a common one it has. */
static const cli_option *find_option(const cli_parser *p, const char *name, size_t len,
                                     char short_name)
{
    for (const cli_option *o = p->options; o->id != 0; o++)
        if (is_option(o, name, len, short_name)) return o;
    for (size_t i = 0; i < sizeof common_options / sizeof *common_options; i++)
        if ((p->common & (1 << i)) && is_option(&common_options[i], name, len, short_name))
            return &common_options[i];
    return NULL;
}

enum { NEXT_END = 0, NEXT_BAD = -2 };

/* Returns the id of the next option (its argument in *value), CLI_OPERAND
 * with the argument in *value, NEXT_END, or NEXT_BAD (reported). */
static int next_argument(cli_parser *p, const char **value)
{
    *value = NULL;
    if (p->next >= p->argc) return NEXT_END;
    const char *arg = p->argv[p->next++];

    if (p->operands_only || arg[0] != '-' || arg[1] == '\0') {
        /* A lone "-" is an operand, as in most tools. */
        *value = arg;
        return CLI_OPERAND;
    }
    if (strcmp(arg, "--") == 0) {
        p->operands_only = true;
        return next_argument(p, value);
    }

    const cli_option *o;
    const char *inline_value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        o = find_option(p, name, len, 0);
        if (!o) {
            cli_usage_error(p->cmd, _("unknown option '--%.*s'"), (int)len, name);
            return NEXT_BAD;
        }
        if (eq) {
            if (!o->has_value) {
                cli_usage_error(p->cmd, _("option '--%s' takes no value"), o->long_name);
                return NEXT_BAD;
            }
            inline_value = eq + 1;
        }
    } else {
        o = find_option(p, NULL, 0, arg[1]);
        if (!o) {
            cli_usage_error(p->cmd, _("unknown option '-%c'"), arg[1]);
            return NEXT_BAD;
        }
        if (arg[2] != '\0') {
            /* "-t4" is "-t 4"; grouped flags ("-ab") are not supported. */
            if (!o->has_value) {
                cli_usage_error(p->cmd, _("unknown option '%s'"), arg);
                return NEXT_BAD;
            }
            inline_value = arg + 2;
        }
    }

    if (o->has_value) {
        if (inline_value) {
            *value = inline_value;
        } else if (p->next < p->argc) {
            *value = p->argv[p->next++];
        } else {
            cli_usage_error(p->cmd, _("option '--%s' needs a value"), o->long_name);
            return NEXT_BAD;
        }
    }
    return o->id;
}

int cli_parse(cli_parser *p, cli_handler handle, void *ctx)
{
    const char *value;
    for (int id; (id = next_argument(p, &value)) != NEXT_END;) {
        int status = CLI_OK;
        switch (id) {
        case NEXT_BAD: return CLI_USAGE;
        case ID_MODEL: p->model = value; break;
        case ID_THREADS:
            if (!cli_parse_int(p->cmd, "--threads", value, 0, 1024, &p->threads))
                return CLI_USAGE;
            break;
        case ID_HELP: fputs(_(p->usage), stdout); return CLI_OK;
        default: status = handle(ctx, id, value); break;
        }
        if (status != CLI_OK) return status;
    }
    return CLI_CONTINUE;
}

int cli_int_option(const char *cmd, const char *name, const char *text, int min, int max,
                   int *out)
{
    return cli_parse_int(cmd, name, text, min, max, out) ? CLI_OK : CLI_USAGE;
}

int cli_name_option(const char *cmd, const char *value, const char *message,
                    const char **out)
{
    if (!*value) return cli_usage_error(cmd, "%s", message);
    *out = value;
    return CLI_OK;
}

int cli_one_image(const char *cmd, const char **image, const char *value)
{
    if (*image)
        return cli_usage_error(cmd, _("one IMAGE at a time ('%s' and '%s')"), *image, value);
    *image = value;
    return CLI_OK;
}

bool cli_parse_int(const char *cmd, const char *name, const char *text,
                   int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max) {
        /* TRANSLATORS: the first %s names the option ("--threads" or "threads") */
        cli_usage_error(cmd, _("%s must be a whole number from %d to %d, not '%s'"),
                        name, min, max, text);
        return false;
    }
    *out = (int)v;
    return true;
}

int cli_precision_option(const char *cmd, const char *value, cnn_precision *out)
{
    if (cnn_precision_parse(value, out) != CNN_OK)
        return cli_usage_error(cmd, _("--precision is f32 or bf16, not \"%s\""), value);
    return CLI_OK;
}

int cli_open_model(const char **path_in, int threads, cnn_model **model,
                   cnn_net **net)
{
    return cli_open_model_precision(path_in, threads, CNN_PRECISION_F32, false, model, net);
}

int cli_open_model_precision(const char **path_in, int threads, cnn_precision precision,
                             bool tta, cnn_model **model, cnn_net **net)
{
    if (!*path_in) *path_in = cli_default_model();
    const char *path = *path_in;
    *model = NULL;
    *net = NULL;
    if (cnn_model_load(path, model) != CNN_OK) {
        cli_file_error(path, cnn_last_error());
        return CLI_FAILED;
    }
    cnn_net_options no;
    cnn_net_options_init(&no);
    no.precision = precision;
    /* With tta an image and its mirror run as one batch of 2. */
    if (cnn_net_create_opts(*model, tta ? 2 : 1, &no, net) != CNN_OK ||
        (threads >= 0 && cnn_net_set_threads(*net, threads) != CNN_OK)) {
        cli_file_error(path, cnn_last_error());
        cnn_net_free(*net);
        cnn_model_free(*model);
        *net = NULL;
        *model = NULL;
        return CLI_FAILED;
    }
    return CLI_OK;
}

float *cli_alloc_input(const cnn_model *m)
{
    /* The loader has validated the sizes; the product still fits easily
     * (CNN_MAX_DIM^2 * 3), but check rather than assume. */
    size_t pixels = (size_t)m->in_h * (size_t)m->in_w;
    if (m->in_h <= 0 || m->in_w <= 0 || m->in_c <= 0 ||
        pixels / (size_t)m->in_h != (size_t)m->in_w ||
        pixels > SIZE_MAX / sizeof(float) / (size_t)m->in_c) {
        cli_error(_("model input %dx%dx%d is not usable"), m->in_h, m->in_w, m->in_c);
        return NULL;
    }
    float *input = malloc(pixels * (size_t)m->in_c * sizeof(float));
    if (!input) cli_error("%s", _("out of memory for the model's input"));
    return input;
}

int cli_run_image(const cnn_model *m, cnn_net *net, const char *image,
                  float *input, float *logit)
{
    return cli_run_image_tta(m, net, image, input, false, logit);
}

int cli_run_image_tta(const cnn_model *m, cnn_net *net, const char *image,
                      float *input, bool tta, float *logit)
{
    cnn_image img = {0};
    cnn_image_options opt = {0};
    opt.min_width = m->in_w;
    opt.min_height = m->in_h;
    cnn_status s = cnn_image_load(image, &opt, &img);
    if (s == CNN_OK)
        s = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride,
                           img.channels, input);
    cnn_image_free(&img);
    if (s == CNN_OK)
        s = tta ? cnn_net_forward_flip(net, input, 1, logit) : cnn_net_forward(net, input, 1, logit);
    if (s != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_conv_layer(const cnn_model *m, const char *cmd, const char *model_path,
                   const char *name, int *layer, int *tap)
{
    int found;
    if (cnn_model_find_conv(m, name, &found, tap) == CNN_OK) {
        if (layer) *layer = found;
        return CLI_OK;
    }
    /* The list as " conv1 conv2": the messages put it right after "are:". */
    char *names = NULL, *convs = NULL;
    if (cnn_model_conv_names(m, " ", &names) == CNN_OK &&
        (convs = malloc(strlen(names) + 2)) != NULL)
        snprintf(convs, strlen(names) + 2, "%s%s", *names ? " " : "", names);
    free(names);
    if (!convs) {
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    if (found < 0)
        cli_usage_error(cmd, _("%s: no layer called '%s'; its conv layers are:%s"), model_path,
                        name, convs);
    else
        cli_usage_error(cmd, _("%s: '%s' is not a conv layer; its conv layers are:%s"), model_path,
                        name, convs);
    free(convs);
    return CLI_USAGE;
}

int cli_run_one_image(const cnn_model *m, cnn_net *net, const char *image, float *logit)
{
    float *input = cli_alloc_input(m);
    if (!input) return CLI_FAILED;
    int status = cli_run_image(m, net, image, input, logit);
    free(input);
    return status;
}

int cli_check_stdout(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("%s", _("cannot write to standard output"));
        return CLI_FAILED;
    }
    return status;
}

/* Like mkdir -p. */
int cli_make_dirs(const char *dir)
{
    size_t n = strlen(dir);
    char *path = malloc(n + 1);
    if (!path) {
        cli_error(_("out of memory"));
        return CLI_FAILED;
    }
    memcpy(path, dir, n + 1);
    int err = 0;
    for (size_t i = 1; i <= n && !err; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) err = errno;
        path[i] = c;
    }
    free(path);
    struct stat st;
    if (!err && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) err = ENOTDIR;
    if (err) {
        cli_error(_("%s: cannot create the folder: %s"), dir, strerror(err));
        return CLI_FAILED;
    }
    return CLI_OK;
}
