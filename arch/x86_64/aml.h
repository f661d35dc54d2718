/* A tiny ACPI Machine Language emitter for the DSDT (aml.c): names,
 * scopes, devices, packages, buffers, integers, strings and resource
 * templates. Errors are sticky: check aml_finish() once at the end. */
#ifndef COVE_X86_AML_H
#define COVE_X86_AML_H

#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml {
	uint8_t *buf;
	size_t len, cap;
	int err;
	int depth;
	struct {
		size_t start;
		int is_buffer;
	} open[AML_MAX_DEPTH];
};

/* Start emitting into buf[0..cap). */
void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* Bytes emitted so far, or -ENOSPC (buffer too small) / -EINVAL (bad
 * name, unbalanced open/close, length beyond 2^28) of the first error. */
int aml_finish(const struct aml *a);

void aml_bytes(struct aml *a, const void *p, size_t n);
/* A NameString: optional '\' root prefix, then 1-4 character segments
 * separated by '.', each padded with '_' to 4 characters. */
void aml_namestring(struct aml *a, const char *path);
/* Integer with the shortest encoding (ZeroOp, OneOp, Byte..QWordPrefix). */
void aml_integer(struct aml *a, uint64_t v);
/* EisaId("PNP0501") as the compressed 32-bit integer. */
void aml_eisaid(struct aml *a, const char *id);
void aml_string(struct aml *a, const char *s);
/* Name(path, …): follow with exactly one data object. */
void aml_name(struct aml *a, const char *path);

/* Open a Scope, Device, Package (n elements) or Buffer; aml_close ends
 * the innermost one and encodes its PkgLength (and a buffer's size). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *path);
/* Method(name, nargs) { … }: at most 7 arguments, not serialized. */
void aml_method(struct aml *a, const char *name, uint8_t nargs);
void aml_package(struct aml *a, uint8_t nelems);
void aml_buffer(struct aml *a);
void aml_close(struct aml *a);

/* Notify(path, value), a statement inside a method. */
void aml_notify(struct aml *a, const char *path, uint64_t value);

/* Resource descriptors inside a buffer (ResourceTemplate). */
void aml_res_memory32_fixed(struct aml *a, int writable, uint32_t base, uint32_t size);
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* Extended Interrupt: ResourceConsumer, Edge, ActiveHigh, Exclusive. */
void aml_res_irq_edge_high(struct aml *a, uint32_t irq);
void aml_res_end(struct aml *a);

/* Bytes a PkgLength takes for a body of n bytes (0 if too long). Pure. */
int aml_pkglen_size(size_t n);

#endif
