/* classify.c - STUB */
typedef int cli_classify_placeholder;
