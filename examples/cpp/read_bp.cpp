// Reads every step of float variable U and double variable T from a BP5 file written through the
// residuum operator, prints per-step statistics, and optionally writes the raw values (C order,
// step after step, U then T) to a file.
//
//   read_bp FILE.bp [RAW_OUT]

#include <adios2.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <vector>

template <class T>
std::vector<T> ReadAll(adios2::IO &io, adios2::Engine &reader, const char *name)
{
    adios2::Variable<T> var = io.InquireVariable<T>(name);
    if (!var)
    {
        throw std::runtime_error(std::string("no variable ") + name);
    }
    var.SetSelection({adios2::Dims(var.Shape().size(), 0), var.Shape()});
    std::vector<T> data;
    reader.Get(var, data, adios2::Mode::Sync);
    return data;
}

int main(int argc, char **argv)
{
    if (argc < 2)
    {
        std::cerr << "usage: read_bp FILE.bp [RAW_OUT]\n";
        return 2;
    }
    // Where find_package(residuum) said the plugin is, unless the user chose otherwise.
    setenv("ADIOS2_PLUGIN_PATH", RESIDUUM_PLUGIN_DIR, 0);
    try
    {
        adios2::ADIOS adios;
        adios2::IO io = adios.DeclareIO("reader");
        adios2::Engine reader = io.Open(argv[1], adios2::Mode::Read);
        std::ofstream raw;
        if (argc > 2)
        {
            raw.open(argv[2], std::ios::binary);
            if (!raw)
            {
                std::fprintf(stderr, "read_bp: cannot open %s\n", argv[2]);
                return 1;
            }
        }
        size_t step = 0;
        while (reader.BeginStep() == adios2::StepStatus::OK)
        {
            std::vector<float> u = ReadAll<float>(io, reader, "U");
            std::vector<double> t = ReadAll<double>(io, reader, "T");
            reader.EndStep();
            double sum = 0;
            for (double v : t)
            {
                sum += v;
            }
            std::printf("step %zu: U %zu values, T %zu values, mean(T) = %.6f\n", step, u.size(),
                        t.size(), t.empty() ? 0.0 : sum / t.size());
            if (raw)
            {
                raw.write(reinterpret_cast<const char *>(u.data()), u.size() * sizeof(float));
                raw.write(reinterpret_cast<const char *>(t.data()), t.size() * sizeof(double));
            }
            ++step;
        }
        reader.Close();
        if (argc > 2 && !raw.flush())
        {
            std::fprintf(stderr, "read_bp: writing %s failed\n", argv[2]);
            return 1;
        }
        return 0;
    }
    catch (std::exception &e)
    {
        std::cerr << "read_bp: " << e.what() << "\n";
        return 1;
    }
}
