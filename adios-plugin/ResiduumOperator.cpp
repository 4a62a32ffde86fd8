// ADIOS2 (>= 2.12) plugin operator over residuum's C ABI.
//
// ADIOS2 finds it through the operator parameters PluginName=residuum and
// PluginLibrary=residuum_plugin (searched in ADIOS2_PLUGIN_PATH). Only OperatorCreate,
// OperatorDestroy and residuum's in-situ hook table (through which the application's copy of
// residuum hands over per-step ranges and takes reports) are exported; the rest of the Rust
// static library is linked in with hidden symbols.

#include <adios2/plugin/PluginOperatorInterface.h>

#include "residuum.h"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#if ADIOS2_PLUGIN_OPERATOR_INTERFACE != 2
#error "residuum's plugin needs ADIOS2 >= 2.12 (plugin operator interface version 2)"
#endif

namespace
{

using adios2::DataType;

const char *TypeName(DataType t)
{
    switch (t)
    {
    case DataType::Int8: return "int8_t";
    case DataType::Int16: return "int16_t";
    case DataType::Int32: return "int32_t";
    case DataType::Int64: return "int64_t";
    case DataType::UInt8: return "uint8_t";
    case DataType::UInt16: return "uint16_t";
    case DataType::UInt32: return "uint32_t";
    case DataType::UInt64: return "uint64_t";
    case DataType::Float: return "float";
    case DataType::Double: return "double";
    case DataType::LongDouble: return "long double";
    case DataType::FloatComplex: return "float complex";
    case DataType::DoubleComplex: return "double complex";
    case DataType::String: return "string";
    case DataType::Char: return "char";
    case DataType::Struct: return "struct";
    default: return "unknown";
    }
}

int ResiduumType(DataType t)
{
    switch (t)
    {
    case DataType::Float: return RESIDUUM_FLOAT;
    case DataType::Double: return RESIDUUM_DOUBLE;
    default: return 0;
    }
}

class ResiduumOperator : public adios2::plugin::PluginOperatorInterface
{
public:
    explicit ResiduumOperator(const adios2::Params &parameters)
    : PluginOperatorInterface(parameters)
    {
        std::vector<const char *> keys, values;
        for (const auto &kv : parameters)
        {
            keys.push_back(kv.first.c_str());
            values.push_back(kv.second.c_str());
        }
        if (residuum_codec_new(keys.data(), values.data(), keys.size(), &m_Codec) != RESIDUUM_OK)
        {
            // ADIOS2 creates operators inside noexcept functions (VariableBase::AddOperation),
            // where throwing would abort the process, and an exception from Operate leaves BP5's
            // serializer broken (EndStep then crashes). So: report now, and decline every type
            // in IsDataTypeValid, which makes ADIOS2 store the data uncompressed. Reading needs
            // no parameters and keeps working.
            m_Codec = nullptr;
            std::fprintf(stderr, "ERROR: residuum operator parameters: %s\n",
                          residuum_last_error());
        }
    }

    ~ResiduumOperator() override { residuum_codec_free(m_Codec); }

    size_t Operate(const char *dataIn, const adios2::Dims &blockStart,
                   const adios2::Dims &blockCount, const DataType type, char *bufferOut) override
    {
        // IsDataTypeValid kept invalid codecs and other types away; an exception here would
        // leave BP5 broken, so these are last-resort guards only.
        const int dtype = ResiduumType(type);
        if (!m_Codec || dtype == 0)
        {
            throw std::invalid_argument(Where() + "operator used despite refusing this variable");
        }
        size_t count = 1;
        for (size_t d : blockCount)
        {
            count *= d;
        }
        if (dataIn == nullptr && count > 0)
        {
            throw std::invalid_argument(Where() + "span Put is not supported with the residuum "
                                                  "operator; Put the data instead");
        }
        // BP5 sized bufferOut with GetEstimatedSize, which is this same bound.
        const size_t capacity =
            residuum_max_compressed_size(m_Codec, dtype, blockCount.size(), blockCount.data());
        // Local and joined arrays' blocks have no start (NULL: coded without temporal
        // prediction, as their counts alone do not tell them apart).
        const size_t *start =
            blockStart.size() == blockCount.size() ? blockStart.data() : nullptr;
        size_t written = 0;
        if (residuum_compress_insitu(m_Codec, m_Engine.c_str(), m_Variable.c_str(), dtype,
                                     blockCount.size(), start, blockCount.data(),
                                     reinterpret_cast<const uint8_t *>(dataIn),
                                     reinterpret_cast<uint8_t *>(bufferOut), capacity,
                                     &written) != RESIDUUM_OK)
        {
            throw std::runtime_error(Where() + residuum_last_error());
        }
        return written;
    }

    size_t InverseOperate(const char *bufferIn, const size_t sizeIn, char *dataOut) override
    {
        // ADIOS2 allocated element size x block count (from its metadata) for dataOut, but
        // does not say so: the stream's own header, checksummed, stands for it. A damaged or
        // crafted file whose metadata and stream disagree is beyond what this interface lets
        // a plugin check. A step predicted from the previous one decodes over the one this
        // process decoded before (kept by residuum).
        const auto *in = reinterpret_cast<const uint8_t *>(bufferIn);
        size_t bytes = 0;
        size_t written = 0;
        if (residuum_stream_info(in, sizeIn, &bytes, nullptr, nullptr) != RESIDUUM_OK ||
            residuum_decompress_insitu(m_Engine.c_str(), in, sizeIn,
                                       reinterpret_cast<uint8_t *>(dataOut), bytes,
                                       &written) != RESIDUUM_OK)
        {
            throw std::runtime_error(Where() + residuum_last_error());
        }
        return written;
    }

    bool IsDataTypeValid(const DataType type) const override
    {
        // Declining makes ADIOS2 skip the operation and store the variable uncompressed: nothing
        // is lost, and the messages say why.
        if (!m_Codec)
        {
            std::fprintf(stderr,
                         "ERROR: residuum: operator not attached because of the parameter error "
                         "above; ADIOS2 stores this variable uncompressed\n");
            return false;
        }
        if (ResiduumType(type) == 0)
        {
            std::fprintf(stderr,
                         "ERROR: residuum: element type %s is not supported (float and double "
                         "only); ADIOS2 stores this variable uncompressed\n",
                         TypeName(type));
            return false;
        }
        return true;
    }

    size_t GetEstimatedSize(const size_t ElemCount, const size_t ElemSize, const size_t ndims,
                            const size_t *dims) const override
    {
        const size_t raw = ElemCount * ElemSize;
        const int dtype = ElemSize == 4 ? RESIDUUM_FLOAT : ElemSize == 8 ? RESIDUUM_DOUBLE : 0;
        if (!m_Codec || dtype == 0)
        {
            return raw + 128; // Operate will refuse; any bound does
        }
        return residuum_max_compressed_size(m_Codec, dtype, ndims, dims);
    }

    void AddExtraParameters(const adios2::Params &params) override
    {
        // The engine's and variable's names key the ranges the application hands over.
        auto it = params.find("VariableName");
        m_Variable = it == params.end() ? std::string() : it->second;
        it = params.find("EngineName");
        m_Engine = it == params.end() ? std::string() : it->second;
    }

private:
    std::string Where() const
    {
        return m_Variable.empty() ? std::string("residuum: ")
                                  : "residuum: variable '" + m_Variable + "': ";
    }

    residuum_codec *m_Codec = nullptr;
    std::string m_Variable;
    std::string m_Engine;
};

} // namespace

extern "C" {

__attribute__((visibility("default"))) adios2::plugin::PluginOperatorInterface *
OperatorCreate(const adios2::Params &parameters)
{
    return new ResiduumOperator(parameters);
}

__attribute__((visibility("default"))) void
OperatorDestroy(adios2::plugin::PluginOperatorInterface *obj)
{
    delete obj;
}

// The application's copy of residuum (residuum_set_range, residuum_take_reports) finds the
// operators' state through this table: the plugin's own copy is otherwise unreachable.
__attribute__((visibility("default"))) const residuum_plugin_hooks *residuum_plugin_hooks_v1()
{
    return residuum_hooks();
}
}
