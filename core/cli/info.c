/* info.c - STUB */
typedef int cli_info_placeholder;
