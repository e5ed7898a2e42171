/* SPDX-License-Identifier: MIT */
/*
 * stages: the packet path's stages (irq, driver, gro, core, ip, ..., copy;
 * then the transmit side) in the order a packet passes them. Data below
 * both its readers: probes (which stage a probe is) and report (a buffer
 * seen at an earlier stage than its last carries a new packet).
 */
#ifndef KSTEP_STAGES_H
#define KSTEP_STAGES_H

/* Where @stage sits on the packet's path (receive, then transmit), 0: off it. */
unsigned int stage_order(const char *stage);

#endif
