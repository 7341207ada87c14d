/*
 * coll/qtopo: every difference between the Open MPI coll framework versions qtopo
 * builds against, in one place; no other file of the component tests a version.
 *
 *                      Open MPI 4.1     Open MPI 5.0     main (6.0 to be)
 *   component/module   2.0.0 / 2.3.0    2.4.0 / 2.4.0    3.0.0 / 3.0.0
 *   element counts     int              int              size_t
 *   comm->c_coll       the framework copies each module's non-NULL slots into it
 *                      after module_enable (and retains the module per slot), in
 *                      order of increasing priority; in 3.0.0 it copies nothing:
 *                      module_enable installs the module's functions itself and
 *                      module_disable puts back what it replaced
 *   communicator id    c_contextid      ompi_comm_get_local_cid()
 *   hcoll's tag range  reserved         reserved         gone (so is hcoll)
 *
 * The version is read from coll.h itself (the MCA_COLL_BASE_VERSION_x_y_z macro it
 * defines), so an in-tree build and an out-of-tree build agree. In all three versions
 * the previous allreduce is what comm->c_coll holds when qtopo's module_enable runs,
 * since lower-priority modules are enabled (and installed) first.
 */

#ifndef MCA_COLL_QTOPO_COMPAT_H
#define MCA_COLL_QTOPO_COMPAT_H

#include "ompi_config.h"

#include <limits.h>

#include "ompi/communicator/communicator.h"
#include "ompi/mca/coll/base/coll_tags.h"
#include "ompi/mca/coll/coll.h"

#if defined(MCA_COLL_BASE_VERSION_3_0_0)
#define QTOPO_COLL_BASE_VERSION MCA_COLL_BASE_VERSION_3_0_0
#define QTOPO_COLL_API_NAME "3.0.0"
#define QTOPO_COLL_SELF_INSTALL 1
typedef size_t qtopo_coll_count_t;
#elif defined(MCA_COLL_BASE_VERSION_2_4_0)
#define QTOPO_COLL_BASE_VERSION MCA_COLL_BASE_VERSION_2_4_0
#define QTOPO_COLL_API_NAME "2.4.0"
#define QTOPO_COLL_SELF_INSTALL 0
typedef int qtopo_coll_count_t;
#elif defined(MCA_COLL_BASE_VERSION_2_0_0)
#define QTOPO_COLL_BASE_VERSION MCA_COLL_BASE_VERSION_2_0_0
#define QTOPO_COLL_API_NAME "2.0.0"
#define QTOPO_COLL_SELF_INSTALL 0
typedef int qtopo_coll_count_t;
#else
#error "coll/qtopo: unknown coll framework version (known: 2.0.0, 2.4.0, 3.0.0)"
#endif

/* Open MPI 5.0 has communicator ids wider than 32 bits; the local index is what
 * identifies a communicator within a process. */
#if OMPI_MAJOR_VERSION >= 5
#define QTOPO_COMM_ID(comm) ((uint64_t) ompi_comm_get_local_cid(comm))
#else
#define QTOPO_COMM_ID(comm) ((uint64_t) (comm)->c_contextid)
#endif

/* The far end of the internal (negative) tag range, where qtopo's own tags are
 * (coll_qtopo.h). 4.1 and 5.0 leave it to hcoll, which counts down from the middle of
 * the range and never gets there; main has no hcoll range, and nothing uses that end
 * (it lies beyond main's MCA_COLL_BASE_TAG_END, so a ULFM revoke would not cancel
 * qtopo's pending messages there). */
#if defined(MCA_COLL_BASE_TAG_HCOLL_END)
#define QTOPO_TAG_FAR_END MCA_COLL_BASE_TAG_HCOLL_END
#else
#define QTOPO_TAG_FAR_END (-1 * INT_MAX)
#endif

/* Makes fn the allreduce of comm (called at the end of a successful module_enable). */
static inline void mca_coll_qtopo_compat_install(struct ompi_communicator_t *comm,
                                                 mca_coll_base_module_t *module,
                                                 mca_coll_base_module_allreduce_fn_t fn)
{
#if QTOPO_COLL_SELF_INSTALL
    comm->c_coll->coll_allreduce = fn;
    comm->c_coll->coll_allreduce_module = module;
#else
    (void) comm;
    /* the framework copies it into comm->c_coll when module_enable returns */
    module->coll_allreduce = fn;
#endif
}

/* Puts the previous allreduce back (called by module_disable). Only in 3.0.0 does
 * comm->c_coll outlive the modules' disable calls with qtopo's pointers in it; older
 * frameworks clear the slots themselves. */
static inline void mca_coll_qtopo_compat_uninstall(struct ompi_communicator_t *comm,
                                                   mca_coll_base_module_t *module,
                                                   mca_coll_base_module_allreduce_fn_t prev,
                                                   mca_coll_base_module_t *prev_module)
{
#if QTOPO_COLL_SELF_INSTALL
    if (module == comm->c_coll->coll_allreduce_module) {
        comm->c_coll->coll_allreduce = prev;
        comm->c_coll->coll_allreduce_module = prev_module;
    }
#else
    (void) comm;
    (void) module;
    (void) prev;
    (void) prev_module;
#endif
}

#endif /* MCA_COLL_QTOPO_COMPAT_H */
