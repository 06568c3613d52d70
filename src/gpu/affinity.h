/* GPU/NIC affinity: which network devices a GPU's traffic should use.
 *
 * On A3 VMs each data NIC sits on a PCIe switch shared with two GPUs; data
 * between a GPU and a NIC behind the same switch never crosses the root
 * complex. Nearness is read from sysfs: the GPU's device path
 * (realpath of /sys/bus/pci/devices/<bus id>) and each NIC's pci_path
 * (realpath of /sys/class/net/<if>/device) share a longer prefix the
 * closer they are in the PCI tree.
 *
 * Override (when sysfs is hidden, e.g. in some containers, or to pin by
 * hand):
 *   TCPX_P2P_GPU_NICS="0:eth1,eth2;1:eth1,eth2;2:eth3,eth4"
 * GPU ordinal, ':', comma list of network device names, entries separated
 * by ';'. A GPU without an entry falls back to sysfs. */
#ifndef TCPX_P2P_GPU_AFFINITY_H
#define TCPX_P2P_GPU_AFFINITY_H

#include <stddef.h>

#include "cudadrv.h"
#include "net.h"

#define GPU_NICS_ENV "TCPX_P2P_GPU_NICS"

/* The GPU's PCI bus id as sysfs and GPUDirect-TCPX spell it: lower case,
 * e.g. "0000:04:00.0" (cuDeviceGetPCIBusId). */
int gpu_bus_id(gpu_cuda *c, int device, char *buf, size_t len);

/* The GPU's sysfs device path (realpath of /sys/bus/pci/devices/<bus id>,
 * bus id from cuDeviceGetPCIBusId, lower case). */
int gpu_pci_path(gpu_cuda *c, int device, char *buf, size_t len);

/* How many leading '/'-separated components two paths share. */
int gpu_path_common(const char *a, const char *b);

/* The devices whose pci_path shares the most components with `gpu_path`,
 * in device order (at most `max`, count in *n). When no device is nearer
 * than any other (no paths, or all equally far) every device is returned. */
int gpu_affinity_pick(const char *gpu_path, const net_props *props, int ndev,
                      int *out, int max, int *n);

/* The devices `spec` (TCPX_P2P_GPU_NICS syntax) names for `gpu`, matched by
 * name (every device of that name). *found = 0 when the spec has no entry
 * for this GPU; NET_EINVAL for a malformed spec or an unknown name. */
int gpu_affinity_from_spec(const char *spec, int gpu, const net_props *props,
                           int ndev, int *out, int max, int *n, int *found);

/* $TCPX_P2P_GPU_NICS first, else sysfs nearness, else every device. */
int gpu_nics_for_gpu(gpu_cuda *c, int gpu, const net_props *props, int ndev,
                     int *out, int max, int *n);

#endif
